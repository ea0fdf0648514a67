"""``python -m webhook.controller``: see webhook.cli.controller."""

import sys

from webhook.cli.controller import main

sys.exit(main())
