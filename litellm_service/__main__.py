import sys

from litellm_service.server import main

sys.exit(main())
