"""``python -m helper``: the same as the ``lanes-helper`` console script."""

from helper.cli import main

raise SystemExit(main())
