#!/usr/bin/env bash
# Builds the real servers Rotor's tests and demo run against, from Go modules, into a
# per-version cache outside the repository. Nothing prebuilt is downloaded.
#
#   hack/build-binaries.sh kubernetes   # kube-apiserver, kube-controller-manager, kubectl
#   hack/build-binaries.sh etcd
#   hack/build-binaries.sh vault
#   hack/build-binaries.sh helm
#   hack/build-binaries.sh health-tools  # kstatus-check and argo-health (hack/tools, for the tests)
#   hack/build-binaries.sh promtool
#   hack/build-binaries.sh all
#
# Versions are pinned below; the cache is ${ROTOR_CACHE_DIR:-$HOME/.cache/rotor}.
set -euo pipefail

K8S_VERSION="${ROTOR_K8S_VERSION:-v1.34.4}"
ETCD_VERSION="${ROTOR_ETCD_VERSION:-v3.6.5}"
VAULT_VERSION="${ROTOR_VAULT_VERSION:-v1.21.0}"
HELM_VERSION="${ROTOR_HELM_VERSION:-v3.19.0}"
# sigs.k8s.io/cli-utils (kstatus), github.com/yuin/gopher-lua (Argo CD's Lua) and the Prometheus
# module that holds promtool (v0.316.0 is Prometheus 3.x's module version).
KSTATUS_VERSION="${ROTOR_KSTATUS_VERSION:-v0.37.2}"
GOPHER_LUA_VERSION="${ROTOR_GOPHER_LUA_VERSION:-v1.1.2}"
PROMETHEUS_VERSION="${ROTOR_PROMETHEUS_VERSION:-v0.316.0}"
TOOLS_SRC="$(cd "$(dirname "$0")" && pwd)/../../../hack/tools"
CACHE="${ROTOR_CACHE_DIR:-$HOME/.cache/rotor}"

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="${GOFLAGS:--buildvcs=false}"
export GOPATH="${GOPATH:-$HOME/go}"

say() { printf '[rotor-build] %s\n' "$*" >&2; }
die() { printf '[rotor-build] ERROR: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "no Go toolchain on PATH. Install Go 1.24 or newer (https://go.dev/doc/install, or your distribution's golang package), or point KUBEBUILDER_ASSETS / ROTOR_*_BIN at existing binaries."

# The checksum database may be unreachable from a machine that only reaches the module proxy.
# Module content is still verified against go.sum files where they exist; say what we do.
if [ -z "${GOSUMDB:-}" ] && [ "$(go env GOSUMDB)" != "off" ]; then
  if ! curl -fsS --max-time 10 -o /dev/null "https://sum.golang.org/lookup/k8s.io/kubernetes@${K8S_VERSION}" 2>/dev/null; then
    say "the Go checksum database (sum.golang.org) cannot be reached from here: building with GOSUMDB=off (modules still come from $(go env GOPROXY))"
    export GOSUMDB=off
  fi
fi

modfile() {  # print the go.mod of module@version from the proxy
  go mod download -json "$1@$2" | python3 -c 'import json,sys; print(open(json.load(sys.stdin)["GoMod"]).read())'
}

build_kubernetes() {
  local out="$CACHE/kubernetes-$K8S_VERSION"
  if [ -x "$out/kube-apiserver" ] && [ -x "$out/kube-controller-manager" ] && [ -x "$out/kubectl" ]; then
    say "kubernetes $K8S_VERSION already built in $out"; return 0
  fi
  local minor_patch="${K8S_VERSION#v1.}"
  local work="$CACHE/src/kubernetes-$K8S_VERSION"
  mkdir -p "$work" "$out"
  say "building kube-apiserver, kube-controller-manager and kubectl $K8S_VERSION from the Go module proxy (first time only: about 10-20 minutes on 2 cores)"
  ( cd "$work"
    rm -f go.mod go.sum
    go mod init rotor.dev/build/kubernetes >/dev/null 2>&1
    # Every staging module k8s.io/X replaced in kubernetes' own go.mod becomes k8s.io/X v0.<minor>.<patch>.
    modfile k8s.io/kubernetes "$K8S_VERSION" \
      | sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' \
      | while read -r m; do go mod edit -replace="$m=$m@v0.$minor_patch"; done
    go mod edit -require="k8s.io/kubernetes@$K8S_VERSION"
    local ld="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor_patch%%.*} -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
    for cmd in kube-apiserver kube-controller-manager kubectl; do
      say "  go build k8s.io/kubernetes/cmd/$cmd"
      go build -mod=mod -trimpath -ldflags "$ld" -o "$out/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd" || die "building $cmd $K8S_VERSION failed (see the Go errors above); fix the toolchain or set ROTOR_K8S_VERSION"
      mv "$out/$cmd.tmp" "$out/$cmd"
    done
  )
  say "kubernetes $K8S_VERSION built in $out"
}

build_etcd() {
  local out="$CACHE/etcd-$ETCD_VERSION"
  if [ -x "$out/etcd" ]; then say "etcd $ETCD_VERSION already built in $out"; return 0; fi
  local work="$CACHE/src/etcd-$ETCD_VERSION"
  mkdir -p "$work" "$out"
  say "building etcd $ETCD_VERSION from the Go module proxy (first time only: a few minutes)"
  ( cd "$work"
    rm -f go.mod go.sum
    go mod init rotor.dev/build/etcd >/dev/null 2>&1
    # etcd's modules point at each other with ./ replaces; pin the siblings to the same tag.
    for m in api/v3 client/pkg/v3 client/v3 pkg/v3 server/v3; do
      go mod edit -require="go.etcd.io/etcd/$m@$ETCD_VERSION"
    done
    go build -mod=mod -trimpath -ldflags "-s -w" -o "$out/etcd.tmp" go.etcd.io/etcd/server/v3 || die "building etcd $ETCD_VERSION failed (see above)"
    mv "$out/etcd.tmp" "$out/etcd"
  )
  say "etcd $ETCD_VERSION built in $out"
}

build_vault() {
  local out="$CACHE/vault-$VAULT_VERSION"
  if [ -x "$out/vault" ]; then say "vault $VAULT_VERSION already built in $out"; return 0; fi
  local work="$CACHE/src/vault-$VAULT_VERSION"
  mkdir -p "$work" "$out"
  say "building the HashiCorp Vault server $VAULT_VERSION from the Go module proxy (first time only: about 15-25 minutes on 2 cores)"
  ( cd "$work"
    rm -f go.mod go.sum
    go mod init rotor.dev/build/vault >/dev/null 2>&1
    local gomod; gomod=$(modfile github.com/hashicorp/vault "$VAULT_VERSION")
    go mod edit -require="github.com/hashicorp/vault@$VAULT_VERSION"
    # Vault's own replaces of its api/sdk submodules point into its tree; use the versions it requires.
    # Its replaces of third-party modules are copied as they are.
    printf '%s\n' "$gomod" | sed -n 's#^replace \([^ ]*\)\( v[^ ]*\)\? => \([^.][^ ]*\) \(v[^ ]*\)$#\1\2 \3 \4#p' \
      | while read -r a b c d; do
          if [ -n "${d:-}" ]; then go mod edit -replace="$a@$b=$c@$d"; else go mod edit -replace="$a=$b@$c"; fi
        done
    go build -mod=mod -trimpath -ldflags "-s -w -X github.com/hashicorp/vault/version.Version=${VAULT_VERSION#v}" -o "$out/vault.tmp" github.com/hashicorp/vault || die "building vault $VAULT_VERSION failed (see above)"
    mv "$out/vault.tmp" "$out/vault"
  )
  say "vault $VAULT_VERSION built in $out"
}

build_helm() {
  local out="$CACHE/helm-$HELM_VERSION"
  if [ -x "$out/helm" ]; then say "helm $HELM_VERSION already built in $out"; return 0; fi
  mkdir -p "$out"
  say "building helm $HELM_VERSION from the Go module proxy (first time only)"
  # helm's default "current" Kubernetes version comes from its own build flags; set it to ours
  local k8s_minor="${K8S_VERSION#v1.}"; k8s_minor="${k8s_minor%%.*}"
  GOBIN="$out" go install -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$k8s_minor" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" || die "building helm $HELM_VERSION failed (see above)"
  say "helm $HELM_VERSION built in $out"
}

# The health checkers of the GitOps tools, from hack/tools (Go source kept in the repository):
# kstatus-check (sigs.k8s.io/cli-utils/pkg/kstatus/status) and argo-health (gopher-lua).
build_health_tools() {
  [ -f "$TOOLS_SRC/go.mod" ] || die "no $TOOLS_SRC/go.mod: run this from a checkout of the Rotor repository"
  local src_sum; src_sum=$(cat "$TOOLS_SRC"/go.mod "$TOOLS_SRC"/go.sum "$TOOLS_SRC"/*/main.go | sha256sum | cut -c1-12)
  local kout="$CACHE/kstatus-$KSTATUS_VERSION" lout="$CACHE/gopher-lua-$GOPHER_LUA_VERSION"
  if [ -x "$kout/kstatus-check" ] && [ -x "$lout/argo-health" ] \
     && [ "$(cat "$kout/.source" 2>/dev/null)" = "$src_sum" ] && [ "$(cat "$lout/.source" 2>/dev/null)" = "$src_sum" ]; then
    say "kstatus-check ($KSTATUS_VERSION) and argo-health (gopher-lua $GOPHER_LUA_VERSION) already built"; return 0
  fi
  local work="$CACHE/src/health-tools"
  rm -rf "$work"; mkdir -p "$work" "$kout" "$lout"
  cp -r "$TOOLS_SRC"/. "$work"/
  say "building kstatus-check (cli-utils $KSTATUS_VERSION) and argo-health (gopher-lua $GOPHER_LUA_VERSION) from the Go module proxy (about a minute)"
  ( cd "$work"
    go mod edit -require="sigs.k8s.io/cli-utils@$KSTATUS_VERSION" -require="github.com/yuin/gopher-lua@$GOPHER_LUA_VERSION"
    go build -mod=mod -trimpath -ldflags "-s -w" -o "$kout/kstatus-check.tmp" ./kstatus-check || die "building kstatus-check failed (see above)"
    go build -mod=mod -trimpath -ldflags "-s -w" -o "$lout/argo-health.tmp" ./argo-health || die "building argo-health failed (see above)"
  )
  mv "$kout/kstatus-check.tmp" "$kout/kstatus-check"; echo "$src_sum" > "$kout/.source"
  mv "$lout/argo-health.tmp" "$lout/argo-health"; echo "$src_sum" > "$lout/.source"
  say "kstatus-check and argo-health built in $kout and $lout"
}

build_promtool() {
  local out="$CACHE/promtool-$PROMETHEUS_VERSION"
  if [ -x "$out/promtool" ]; then say "promtool $PROMETHEUS_VERSION already built in $out"; return 0; fi
  mkdir -p "$out"
  say "building promtool (github.com/prometheus/prometheus $PROMETHEUS_VERSION) from the Go module proxy (first time only: about 12 minutes on 2 cores)"
  GOBIN="$out" go install -trimpath -ldflags "-s -w" "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION" || die "building promtool $PROMETHEUS_VERSION failed (see above)"
  say "promtool $PROMETHEUS_VERSION built in $out"
}

mkdir -p "$CACHE"
exec 9>"$CACHE/.build.lock"
if ! flock -n 9; then
  say "another build is running; waiting for it to finish"
  flock 9
fi

case "${1:-all}" in
  kubernetes) build_kubernetes ;;
  etcd) build_etcd ;;
  vault) build_vault ;;
  helm) build_helm ;;
  health-tools) build_health_tools ;;
  promtool) build_promtool ;;
  all) build_etcd; build_kubernetes; build_vault; build_helm; build_health_tools; build_promtool ;;
  *) die "unknown component '$1' (kubernetes, etcd, vault, helm, health-tools, promtool, all)" ;;
esac
