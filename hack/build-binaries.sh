#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kubectl, etcd, Vault and helm from Go modules
# into ~/.cache/rotor (or $ROTOR_CACHE_DIR). See operator/rotor/devenv/build_binaries.sh.
exec bash "$(dirname "$0")/../operator/rotor/devenv/build_binaries.sh" "$@"
