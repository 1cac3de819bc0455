"""``python -m npo.llm.configs fsdp|zero3``: print the path of a shipped accelerate config."""

import sys

from npo.llm.configs import CONFIGS, config_path

if len(sys.argv) != 2 or sys.argv[1] not in CONFIGS:
    print(f"usage: python -m npo.llm.configs {{{','.join(CONFIGS)}}}", file=sys.stderr)
    sys.exit(2)
print(config_path(sys.argv[1]))
