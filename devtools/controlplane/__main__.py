"""``python -m devtools.controlplane [ensure|path]``: build (or reuse) the control-plane binaries; used by the
Makefile."""

from devtools.controlplane.binaries import main

raise SystemExit(main())
