"""``python -m webhook.controller``: see webhook.controller.cli."""

import sys

from webhook.controller.cli import main

sys.exit(main())
