#!/usr/bin/env bash
# Lanes end to end on kind: cluster, images, chart, the demo services (a -> b -> c, with gray versions of a and
# c), checks of what was injected, and a rolling restart under constant load that must not fail a request.
#
# Needs Docker, kind (>= 0.33), kubectl and Python 3 (helm is taken from PATH, or the pinned build of
# `make controlplane` is used). Not run in CI, which has no Docker: tests/chart/test_kind_manifests.py
# validates every manifest this script applies against a real API server (server-side dry-run) and runs
# ShellCheck on this script.
#
# Environment: LANES_KIND_CLUSTER (default lanes), LANES_IMAGE_TAG (dev), LANES_KEEP_LOAD=1 keeps the load pod.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLUSTER=${LANES_KIND_CLUSTER:-lanes}
TAG=${LANES_IMAGE_TAG:-dev}
NS=shop
LANES_NS=lanes-system
WEBHOOK_IMAGE=lanes.local/lanes-webhook:$TAG
HELPER_IMAGE=lanes.local/lanes-helper:$TAG
DEMO_DEPLOYMENTS=(a a-gray b c c-gray)

say() { printf '\033[1m[kind/up]\033[0m %s\n' "$*"; }
die() { printf '[kind/up] error: %s\n' "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is required ($2)"; }

need docker "https://docs.docker.com/engine/install/"
need kind "go install sigs.k8s.io/kind@v0.33.0"
need kubectl "https://kubernetes.io/docs/tasks/tools/"
docker info >/dev/null 2>&1 || die "the Docker daemon is not reachable"

if command -v helm >/dev/null 2>&1; then
  HELM=helm
else
  python=${PYTHON:-$ROOT/.venv/bin/python}
  [ -x "$python" ] || die "helm not on PATH and $python missing: run 'make install' or install helm"
  HELM=$("$python" -c 'from devtools.controlplane.binaries import ensure_binaries; print(ensure_binaries(("helm",)))')/helm
fi

KCTX=kind-$CLUSTER
k() { kubectl --context "$KCTX" "$@"; }

# 1. cluster -----------------------------------------------------------------------------------------------------
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  say "reusing kind cluster $CLUSTER"
else
  say "creating kind cluster $CLUSTER"
  kind create cluster --name "$CLUSTER" --config "$ROOT/kind/cluster.yaml" --wait 120s
fi

# 2. images --------------------------------------------------------------------------------------------------------
say "building $WEBHOOK_IMAGE and $HELPER_IMAGE"
docker build -f "$ROOT/Dockerfile.webhook" -t "$WEBHOOK_IMAGE" "$ROOT"
docker build -f "$ROOT/Dockerfile.helper" -t "$HELPER_IMAGE" "$ROOT"
kind load docker-image --name "$CLUSTER" "$WEBHOOK_IMAGE" "$HELPER_IMAGE"

# 3. Lanes -------------------------------------------------------------------------------------------------------
say "installing the chart into $LANES_NS"
"$HELM" upgrade --install lanes "$ROOT/charts/lanes" --kube-context "$KCTX" \
  --namespace "$LANES_NS" --create-namespace \
  -f "$ROOT/kind/values.yaml" \
  --set image.webhook.tag="$TAG" --set image.helper.tag="$TAG" \
  --wait --timeout 5m
k -n "$LANES_NS" rollout status deployment/lanes --timeout 3m
# the webhook answers only once the controller has issued its certificate and patched caBundle
for _ in $(seq 1 60); do
  bundle=$(k get mutatingwebhookconfiguration lanes -o jsonpath='{.webhooks[0].clientConfig.caBundle}')
  [ -n "$bundle" ] && break
  sleep 2
done
[ -n "$bundle" ] || die "caBundle of MutatingWebhookConfiguration lanes is still empty (kubectl -n $LANES_NS logs deploy/lanes -c controller)"

# 4. demo workloads --------------------------------------------------------------------------------------------
say "deploying examples/ into namespace $NS (lanes=enabled)"
k apply -f "$ROOT/kind/namespace.yaml"
k apply -n "$NS" -f "$ROOT/examples/"
for d in "${DEMO_DEPLOYMENTS[@]}"; do
  k -n "$NS" rollout status "deployment/$d" --timeout 5m
done

# 5. what Lanes did to the running pods -----------------------------------------------------------------------
say "checking lanes, readiness gates and preStop hooks of the running pods"
fmt='{range .items[*]}{.metadata.name}{"|"}{.metadata.labels.app\.kubernetes\.io/name}{"|"}{.metadata.labels.lanes\.io/lane}{"|"}{.spec.readinessGates[*].conditionType}{"|"}{.status.conditions[?(@.type=="lanes.io/registered")].status}{"|"}{.spec.containers[0].lifecycle.preStop.httpGet.path}{"|"}{.spec.initContainers[*].name}{"\n"}{end}'
pods=$(k -n "$NS" get pods -l app.kubernetes.io/part-of=lanes-demo,app.kubernetes.io/name!=load \
  --field-selector=status.phase=Running -o jsonpath="$fmt")
[ -n "$pods" ] || die "no running demo pods in $NS"
problems=0
gray_seen=""
# '|' separates the fields: unlike blanks, it does not collapse when a field is empty
while IFS='|' read -r pod app lane gate registered prestop init; do
  [ -n "$pod" ] || continue
  ok=yes
  [ -n "$lane" ] || { echo "  $pod: no lanes.io/lane label"; ok=no; }
  [ "$gate" = "lanes.io/registered" ] || { echo "  $pod: readiness gate missing (got '$gate')"; ok=no; }
  [ "$registered" = "True" ] || { echo "  $pod: condition lanes.io/registered is '$registered'"; ok=no; }
  [ "$prestop" = "/prestop" ] || { echo "  $pod: app preStop is not the agent's /prestop"; ok=no; }
  case " $init " in *" lanes-agent "*) ;; *) echo "  $pod: no lanes-agent sidecar"; ok=no ;; esac
  if [ "$lane" = "gray" ]; then gray_seen="$gray_seen $app"; fi
  if [ "$ok" = yes ]; then
    printf '  %-28s app=%s lane=%s gate=%s preStop=%s init=[%s]\n' "$pod" "$app" "$lane" "$registered" "$prestop" "$init"
  else
    problems=$((problems + 1))
  fi
done <<< "$pods"
case "$gray_seen" in *a*) ;; *) echo "  no gray pod of service a"; problems=$((problems + 1)) ;; esac
case "$gray_seen" in *c*) ;; *) echo "  no gray pod of service c"; problems=$((problems + 1)) ;; esac
case "$gray_seen" in *b*) echo "  service b has a gray pod but should not"; problems=$((problems + 1)) ;; esac
[ "$problems" -eq 0 ] || die "$problems problem(s) with the injected pods"

# 6. rolling restart under constant load ---------------------------------------------------------------------
say "rolling restart of a, b and c under constant load"
k -n "$NS" delete pod load --ignore-not-found --wait=true
k -n "$NS" apply -f "$ROOT/kind/load.yaml"
k -n "$NS" wait --for=condition=Ready pod/load --timeout 2m
sleep 5
counts() { k -n "$NS" logs load --tail=1; }
before=$(counts)
k -n "$NS" rollout restart deployment/a deployment/b deployment/c
for d in a b c; do
  k -n "$NS" rollout status "deployment/$d" --timeout 10m
done
sleep 10  # the old pods' drain ends after the rollout reports completion
after=$(counts)
total_before=${before#total=}; total_before=${total_before%% *}
failed_before=${before##*failed=}
total_after=${after#total=}; total_after=${total_after%% *}
failed_after=${after##*failed=}
requests=$((total_after - total_before))
failed=$((failed_after - failed_before))
say "rolling restart: $requests requests, $failed failed"
if [ "${LANES_KEEP_LOAD:-0}" != 1 ]; then
  k -n "$NS" delete pod load --wait=false
fi
[ "$requests" -gt 0 ] || die "the load generator made no requests"
[ "$failed" -eq 0 ] || die "$failed request(s) failed during the rolling restart"
say "done: kubectl --context $KCTX -n $NS get pods -L lanes.io/lane ; kind/down.sh removes the cluster"
