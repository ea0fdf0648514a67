#!/usr/bin/env bash
# Deletes the kind cluster created by kind/up.sh (and everything in it). Needs kind (and Docker).
set -euo pipefail
CLUSTER=${LANES_KIND_CLUSTER:-lanes}
command -v kind >/dev/null 2>&1 || { echo "[kind/down] error: kind is required" >&2; exit 1; }
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  kind delete cluster --name "$CLUSTER"
else
  echo "[kind/down] no kind cluster named $CLUSTER"
fi
