"""Find the server binaries, or build them once into a per-version cache outside the repo.

Order: explicit environment variables (``ROTOR_<NAME>_BIN``, or ``KUBEBUILDER_ASSETS`` for
etcd/kube-apiserver/kubectl), then ``PATH``, then the cache, else build from Go modules.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from rotor.devenv.errors import EnvironmentProblem

BUILD_SCRIPT = Path(__file__).with_name("build_binaries.sh")


def _script_default(var: str) -> str:
    for line in BUILD_SCRIPT.read_text().splitlines():
        if line.startswith(f'{var}="${{ROTOR_'):
            return line.split(":-", 1)[1].split("}", 1)[0]
    raise EnvironmentProblem(f"{var} is not pinned in {BUILD_SCRIPT}")


K8S_VERSION = os.environ.get("ROTOR_K8S_VERSION") or _script_default("K8S_VERSION")
ETCD_VERSION = os.environ.get("ROTOR_ETCD_VERSION") or _script_default("ETCD_VERSION")
VAULT_VERSION = os.environ.get("ROTOR_VAULT_VERSION") or _script_default("VAULT_VERSION")
HELM_VERSION = os.environ.get("ROTOR_HELM_VERSION") or _script_default("HELM_VERSION")
KSTATUS_VERSION = os.environ.get("ROTOR_KSTATUS_VERSION") or _script_default("KSTATUS_VERSION")
GOPHER_LUA_VERSION = os.environ.get("ROTOR_GOPHER_LUA_VERSION") or _script_default("GOPHER_LUA_VERSION")
PROMETHEUS_VERSION = os.environ.get("ROTOR_PROMETHEUS_VERSION") or _script_default("PROMETHEUS_VERSION")


def cache_dir() -> Path:
    return Path(os.environ.get("ROTOR_CACHE_DIR") or Path.home() / ".cache" / "rotor")


@dataclass(frozen=True)
class Binary:
    name: str  # the executable's file name
    component: str  # what build_binaries.sh builds it with
    cache_subdir: str
    kubebuilder: bool = False  # may come from KUBEBUILDER_ASSETS


BINARIES = {
    "kube-apiserver": Binary("kube-apiserver", "kubernetes", f"kubernetes-{K8S_VERSION}", True),
    "kube-controller-manager": Binary("kube-controller-manager", "kubernetes", f"kubernetes-{K8S_VERSION}"),
    "kubectl": Binary("kubectl", "kubernetes", f"kubernetes-{K8S_VERSION}", True),
    "etcd": Binary("etcd", "etcd", f"etcd-{ETCD_VERSION}", True),
    "vault": Binary("vault", "vault", f"vault-{VAULT_VERSION}"),
    "helm": Binary("helm", "helm", f"helm-{HELM_VERSION}"),
    # the GitOps and Prometheus tools the tests check Rotor's packaging with
    "kstatus-check": Binary("kstatus-check", "health-tools", f"kstatus-{KSTATUS_VERSION}"),
    "argo-health": Binary("argo-health", "health-tools", f"gopher-lua-{GOPHER_LUA_VERSION}"),
    "promtool": Binary("promtool", "promtool", f"promtool-{PROMETHEUS_VERSION}"),
}


def _env_var(name: str) -> str:
    return "ROTOR_" + name.upper().replace("-", "_") + "_BIN"


def locate(name: str) -> Path | None:
    """Where the binary is, without building anything."""
    spec = BINARIES[name]
    explicit = os.environ.get(_env_var(name))
    if explicit:
        path = Path(explicit)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise EnvironmentProblem(
                f"{_env_var(name)}={explicit} is not an executable file; fix or unset it"
            )
        return path
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and spec.kubebuilder and (Path(assets) / name).is_file():
        return Path(assets) / name
    if os.environ.get("ROTOR_IGNORE_PATH_BINARIES") != "1" and name not in ("kubectl",):
        found = shutil.which(name)
        if found:
            return Path(found)
    cached = cache_dir() / spec.cache_subdir / name
    if cached.is_file() and os.access(cached, os.X_OK):
        return cached
    return None


def ensure(name: str, *, progress: bool = True) -> Path:
    """Return the binary's path, building it from Go modules into the cache the first time."""
    path = locate(name)
    if path is not None:
        return path
    spec = BINARIES[name]
    if shutil.which("go") is None:
        raise EnvironmentProblem(
            f"{name} was not found ({_env_var(name)}, PATH, {cache_dir() / spec.cache_subdir}) and there is "
            "no Go toolchain to build it. Install Go 1.24+ or set "
            f"{_env_var(name)} to an existing binary."
        )
    if progress:
        print(
            f"rotor: building {name} ({spec.component}) into {cache_dir()}; this happens once",
            file=sys.stderr,
        )
    result = subprocess.run(["bash", str(BUILD_SCRIPT), spec.component], check=False)
    if result.returncode != 0:
        raise EnvironmentProblem(
            f"building {name} failed (exit {result.returncode}); the Go errors are above. "
            f"Run `bash {BUILD_SCRIPT} {spec.component}` to retry, or set {_env_var(name)}."
        )
    path = locate(name)
    if path is None:
        raise EnvironmentProblem(
            f"the build of {name} finished but {cache_dir() / spec.cache_subdir} has no binary"
        )
    return path
