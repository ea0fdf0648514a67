"""``python -m webhook.envtest [ensure|path]``: build (or reuse) the control-plane binaries; used by the Makefile."""

from webhook.envtest.binaries import main

raise SystemExit(main())
