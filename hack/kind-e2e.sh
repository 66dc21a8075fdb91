#!/usr/bin/env bash
# Runs the end-to-end tests locally the way CI does (.github/workflows/e2e-kind.yaml): a kind
# cluster, the operator image built and loaded into it, the Helm chart installed with that image,
# then `make test-e2e` against the cluster. Needs Docker, kind and kubectl; helm is found in
# $ROTOR_HELM, PATH or ~/.cache/rotor/helm-*/helm (hack/build-binaries.sh helm builds it).
#
#   hack/kind-e2e.sh                 # create (or reuse) the cluster, test, keep the cluster
#   KIND_CLUSTER=x hack/kind-e2e.sh  # another cluster name (default rotor-e2e)
#   hack/kind-e2e.sh --delete        # delete the cluster afterwards
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER="${KIND_CLUSTER:-rotor-e2e}"
IMAGE="${ROTOR_E2E_IMAGE:-rotor:e2e}"
NAMESPACE=rotor-system
DELETE=0
[ "${1:-}" = "--delete" ] && DELETE=1

say() { printf '[kind-e2e] %s\n' "$*" >&2; }
die() { printf '[kind-e2e] ERROR: %s\n' "$*" >&2; exit 1; }

for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is not on PATH"
done
docker info >/dev/null 2>&1 || die "the Docker engine is not reachable (docker info failed)"

helm="${ROTOR_HELM:-$(command -v helm 2>/dev/null || true)}"
[ -n "$helm" ] || helm="$(ls -1d "${ROTOR_CACHE_DIR:-$HOME/.cache/rotor}"/helm-*/helm 2>/dev/null | sort -V | tail -n1 || true)"
[ -n "$helm" ] && [ -x "$helm" ] || die "no helm binary: run hack/build-binaries.sh helm (or set ROTOR_HELM)"

kubeconfig="$(mktemp)"
cleanup() {
  rm -f "$kubeconfig"
  if [ "$DELETE" = 1 ]; then say "deleting cluster $CLUSTER"; kind delete cluster --name "$CLUSTER" || true; fi
}
trap cleanup EXIT

if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  say "reusing kind cluster $CLUSTER"
else
  say "creating kind cluster $CLUSTER"
  kind create cluster --name "$CLUSTER" --wait 120s
fi
kind get kubeconfig --name "$CLUSTER" >"$kubeconfig"
export KUBECONFIG="$kubeconfig"

say "building $IMAGE"
docker build -t "$IMAGE" .
kind load docker-image "$IMAGE" --name "$CLUSTER"

say "installing the chart"
"$helm" upgrade --install rotor charts/rotor \
  --namespace "$NAMESPACE" --create-namespace \
  --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" --set image.pullPolicy=Never \
  --wait --timeout 5m
# A new image under the same tag needs new pods.
kubectl -n "$NAMESPACE" rollout restart deployment/rotor
kubectl -n "$NAMESPACE" rollout status deployment/rotor --timeout=3m

say "running make test-e2e"
status=0
ROTOR_TEST_KUBECONFIG="$kubeconfig" make test-e2e || status=$?
if [ "$status" != 0 ]; then
  say "tests failed; operator logs follow"
  kubectl -n "$NAMESPACE" logs deployment/rotor --all-containers --tail=300 || true
fi
exit "$status"
