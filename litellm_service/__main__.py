"""`python -m litellm_service`: the `stabilizer` command (LiteLLM itself is `python -m litellm_service.server`)."""

import sys

from litellm_service.cli import main

sys.exit(main())
