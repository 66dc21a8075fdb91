#!/usr/bin/env bash
# Copies the generated rotor.dev CRDs (crds/*.yaml) into the Helm chart (charts/rotor/files/crds/),
# where templates/crds/rotor-crds.yaml renders them. tests/unit/test_chart.py fails when the two
# differ, so run this after regenerating crds/.
#
#   hack/sync-chart-crds.sh          # copy
#   hack/sync-chart-crds.sh --check  # exit 1 if the copies differ
set -euo pipefail
cd "$(dirname "$0")/.."

src=crds
dst=charts/rotor/files/crds

crd_files() {  # the CRD manifests of a directory, not its kustomization.yaml or anything else
  local f
  for f in "$1"/*.yaml; do
    [ -e "$f" ] || continue
    grep -q '^kind: CustomResourceDefinition' "$f" && printf '%s\n' "$f"
  done
  return 0
}

if [ "${1:-}" = "--check" ]; then
  status=0
  diff <(crd_files "$src" | xargs -r -n1 basename | sort) <(crd_files "$dst" | xargs -r -n1 basename | sort) \
    || { echo "chart CRD files differ from $src/ by name" >&2; status=1; }
  for f in $(crd_files "$src"); do
    cmp -s "$f" "$dst/$(basename "$f")" || { echo "$dst/$(basename "$f") differs from $f" >&2; status=1; }
  done
  [ "$status" = 0 ] && echo "chart CRDs match $src/"
  exit "$status"
fi

mkdir -p "$dst"
rm -f "$dst"/*.yaml
n=0
for f in $(crd_files "$src"); do
  cp "$f" "$dst/"
  n=$((n + 1))
done
echo "copied $n CRD file(s) from $src/ to $dst/"
