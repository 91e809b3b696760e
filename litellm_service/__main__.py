"""`python -m litellm_service`: the `stabilizer` command (LiteLLM itself is `python -m litellm_service.server`).

Job files installed before 2026-11-26 start LiteLLM as `python -m litellm_service --config ...`:
those arguments still start it, until `stabilizer launchd|systemd install` writes the job again.
"""

import sys

if sys.argv[1:2] == ["--config"]:
    from litellm_service.server import main
else:
    from litellm_service.cli import main

sys.exit(main())
