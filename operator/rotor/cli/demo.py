"""``rotor demo``: the whole job on one machine. It starts a local Kubernetes control plane, a
Vault dev server and the AWS emulator, installs the CRDs, seeds the backends, runs the operator,
applies examples/ (stores before the ManagedSecrets that use them), then shows the Secrets being
synced and one being rotated: the source versions before and after, the Secret's keys (names
only: ``password_previous`` beside ``password``) and the workload restarted.

It prints how to reach its cluster with kubectl while it runs, redraws its table in place on a
terminal, and with ``--keep-logs`` keeps its work directory (operator log, kubeconfig, server
logs) and says where."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

CRDS = Path(__file__).resolve().parents[3] / "crds"
WATCH_SECONDS = 2.0
DEMO_DEBOUNCE = "3s"
RESTART_WAIT_SECONDS = 45.0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo", help="run Rotor end to end on this machine (local Kubernetes, Vault, AWS emulator)"
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="exit 0 once every example is Ready and a rotation completed; non-zero otherwise",
    )
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait in --check mode")
    p.add_argument(
        "--examples", type=Path, default=None, help="folder of example manifests (default: examples/)"
    )
    p.add_argument(
        "--keep-logs",
        "--keep",
        dest="keep",
        action="store_true",
        help="keep the work directory (operator log, kubeconfig, server logs) afterwards, and say where",
    )
    p.set_defaults(func=run)


def _say(text: str) -> None:
    print(f"rotor demo: {text}", flush=True)


def _kubectl(kubectl: str, kubeconfig: str, *args: str, input_: str | None = None) -> str:
    from rotor.devenv.examples import run_kubectl

    return run_kubectl(kubectl, kubeconfig, *args, input_=input_, timeout=120)


def _objects(kubectl: str, kubeconfig: str) -> list[dict[str, Any]]:
    out = _kubectl(kubectl, kubeconfig, "get", "managedsecrets.rotor.dev", "-A", "-o", "json")
    return list(json.loads(out).get("items", []))


def _get(kubectl: str, kubeconfig: str, namespace: str, resource: str, name: str) -> dict[str, Any]:
    return dict(
        json.loads(_kubectl(kubectl, kubeconfig, "-n", namespace, "get", resource, name, "-o", "json"))
    )


def _ready(obj: dict[str, Any]) -> tuple[bool, str, str]:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True", cond.get("reason", ""), cond.get("message", "")
    return False, "Pending", "not reconciled yet"


def _table(items: list[dict[str, Any]]) -> str:
    """The same table as ``rotor status -A``."""
    from rotor.cli.status import render_status
    from rotor.inventory import status_row

    rows = sorted((status_row(ms) for ms in items), key=lambda r: (r.namespace, r.name))
    return render_status(rows, "table", dt.datetime.now(dt.UTC))


class Screen:
    """Shows the table: redrawn in place on a terminal; otherwise (a log file, a pipe) printed
    again only when what it says changed (``key``; relative times alone do not count), with no
    escape codes."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out
        self.tty = out.isatty()
        self.drawn = 0  # lines of the last table, when redrawing in place
        self.last: object = None

    def show(self, text: str, *, footer: str = "", key: object = None) -> None:
        key = text if key is None else key
        if self.tty:
            if self.drawn:
                self.out.write(f"\x1b[{self.drawn}F\x1b[J")  # back to the table's first line, clear below
            block = text + (footer + "\n" if footer else "")
            self.out.write(block)
            self.drawn = block.count("\n")
        elif key != self.last:
            self.out.write(text)
        self.last = key
        self.out.flush()

    def detach(self) -> None:
        """What comes next is printed below the table, which stays."""
        self.drawn = 0


def reach_lines(kubectl: str, kubeconfig: str) -> list[str]:
    """How a person reaches the demo's cluster from another terminal."""
    rotor = shutil.which("rotor") or f"{shlex.quote(sys.executable)} -m rotor.cli.main"
    return [
        f"kubectl: {kubectl}",
        "reach the cluster from another terminal with:",
        f"  KUBECONFIG={shlex.quote(kubeconfig)} {shlex.quote(kubectl)} get ms -A",
        f"  KUBECONFIG={shlex.quote(kubeconfig)} {rotor} status -A",
    ]


def run(args: argparse.Namespace) -> int:
    from rotor.devenv import binaries
    from rotor.devenv.environment import LocalEnvironment
    from rotor.devenv.errors import EnvironmentProblem
    from rotor.devenv.examples import EXAMPLES, apply, managed_secrets
    from rotor.devenv.process import free_port
    from rotor.devenv.seed import DEMO_NAMESPACES, seed_aws, seed_vault

    examples = args.examples or EXAMPLES
    workdir = Path(tempfile.mkdtemp(prefix="rotor-demo-"))
    _say("preparing the servers (the first run builds them from Go modules, which takes a while)")
    try:
        kubectl = str(binaries.ensure("kubectl"))
        env = LocalEnvironment(workdir, keep_workdir=args.keep)
        env.start()
    except EnvironmentProblem as exc:
        print(f"rotor demo: {exc}", file=sys.stderr)
        return 2
    operator: subprocess.Popen[bytes] | None = None
    log_path = workdir / "operator.log"
    try:
        kubeconfig = str(env.kubeconfig)
        assert env.vault is not None and env.aws is not None
        _say("installing the CRDs")
        _kubectl(kubectl, kubeconfig, "apply", "--server-side", "-k", str(CRDS))
        _kubectl(
            kubectl,
            kubeconfig,
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd",
            "-l",
            "app.kubernetes.io/name=rotor",
        )
        for line in reach_lines(kubectl, kubeconfig):
            _say(line)
        for ns in DEMO_NAMESPACES:
            subprocess.run(
                [kubectl, "--kubeconfig", kubeconfig, "create", "namespace", ns],
                capture_output=True,
                check=False,
            )
        _say("seeding Vault and the AWS emulator with example values")
        seed_vault(env.vault_client())
        seed_aws(env.aws.endpoint)
        port = free_port()
        _say(f"starting the operator (log: {log_path}, metrics: http://127.0.0.1:{port}/metrics)")
        op_env = dict(os.environ, KUBECONFIG=kubeconfig, **env.aws.client_env())
        with log_path.open("ab") as log:
            operator = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "rotor.cli.main",
                    "run",
                    "--no-leader-elect",
                    "--log-format",
                    "text",
                    "--metrics-addr",
                    f"127.0.0.1:{port}",
                    "--restart-debounce",
                    DEMO_DEBOUNCE,  # restarts within seconds of a rotation, for the demo (default 30s)
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=op_env,
                start_new_session=True,
            )
        _wait_ready(port, operator)
        _say(f"applying {examples} (stores first, then policies, then ManagedSecrets, then workloads)")
        apply(
            kubectl,
            kubeconfig,
            vault_addr=env.vault.address,
            aws_endpoint=env.aws.endpoint,
            directory=examples,
        )
        wanted = managed_secrets(examples)
        ok = _wait_all_ready(kubectl, kubeconfig, wanted, args.timeout if args.check else 120.0)
        print(_table(_objects(kubectl, kubeconfig)), end="", flush=True)
        if not ok:
            bad = [
                (o["metadata"]["namespace"], o["metadata"]["name"], *_ready(o)[1:])
                for o in _objects(kubectl, kubeconfig)
                if not _ready(o)[0]
            ]
            for ns, name, reason, message in bad:
                print(f"rotor demo: NOT READY {ns}/{name}: {reason}: {message}", file=sys.stderr)
            if args.check:
                return 1
        rotated = _demo_rotation(kubectl, kubeconfig, args.timeout if args.check else 60.0)
        if args.check:
            print(_table(_objects(kubectl, kubeconfig)), end="", flush=True)
            if not rotated:
                print("rotor demo: the example rotation did not complete", file=sys.stderr)
                return 1
            _say(f"check passed: {len(wanted)} ManagedSecrets Ready and a rotation completed")
            return 0
        _watch(kubectl, kubeconfig)
        return 0
    except KeyboardInterrupt:
        print(flush=True)
        return 0
    except RuntimeError as exc:
        print(f"rotor demo: {exc}", file=sys.stderr)
        return 1
    finally:
        _say("stopping… (the operator, the AWS emulator, Vault and the control plane)")
        if operator is not None and operator.poll() is None:
            operator.terminate()
            try:
                operator.wait(15)
            except subprocess.TimeoutExpired:
                operator.kill()
        env.stop()
        if args.keep:
            _say(f"logs kept in {workdir} (operator: {log_path}; servers: {workdir}/kube, vault, aws)")
        else:
            _say("stopped (pass --keep-logs to keep the logs and the kubeconfig)")


def _watch(kubectl: str, kubeconfig: str, *, sleep: Callable[[float], None] = time.sleep) -> None:
    _say("watching; press Ctrl-C to stop (everything started here stops with it)")
    screen = Screen()
    while True:
        stamp = dt.datetime.now(dt.UTC).strftime("%H:%M:%S")
        items = _objects(kubectl, kubeconfig)
        screen.show(_table(items), footer=f"(updated {stamp} UTC; Ctrl-C stops)", key=_state(items))
        sleep(WATCH_SECONDS)


def _state(items: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """What the table says, without its relative times: printed again only when this changes."""
    from rotor.inventory import status_row

    rows = (status_row(ms) for ms in items)
    return sorted((r.namespace, r.name, r.ready, r.reason, r.rotation, r.rotation_phase) for r in rows)


def _wait_ready(port: int, operator: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if operator.poll() is not None:
            raise RuntimeError("the operator exited during startup; see its log")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError("the operator did not become ready within 60s")


def _wait_all_ready(kubectl: str, kubeconfig: str, wanted: list[tuple[str, str]], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        items = {
            (o["metadata"]["namespace"], o["metadata"]["name"]): o for o in _objects(kubectl, kubeconfig)
        }
        ready = sum(1 for key in wanted if key in items and _ready(items[key])[0])
        if ready != last:
            _say(f"{ready}/{len(wanted)} ManagedSecrets Ready")
            last = ready
        if ready == len(wanted):
            return True
        time.sleep(1)
    return False


def _versions(obj: dict[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in ((obj.get("status") or {}).get("sourceVersions") or {}).items()}


def rotation_summary(
    before: dict[str, Any], after: dict[str, Any], secret: dict[str, Any], restarted: list[str]
) -> list[str]:
    """What a rotation did, for people: versions, the Secret's key names, the workloads restarted.
    Only names and versions: never a value."""
    ns, name = after["metadata"]["namespace"], after["metadata"]["name"]
    old, new = _versions(before), _versions(after)
    lines = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            lines.append(f"  source {key}: version {old.get(key, '-')} -> {new.get(key, '-')}")
    rotation = (after.get("status") or {}).get("rotation") or {}
    keys = sorted((secret.get("data") or {}).keys())
    previous = [k for k in keys if k.endswith("_previous")]
    lines.append(f"  Secret {ns}/{secret['metadata']['name']} keys: {', '.join(keys)}")
    if previous:
        until = rotation.get("previousRetainedUntil") or "the end of the grace period"
        lines.append(f"  {', '.join(previous)}: the old value, kept until {until} for clients still using it")
    if restarted:
        lines.append(f"  restarted: {', '.join(restarted)} (rollout: Auto, they read the Secret)")
    else:
        lines.append("  restarted: nothing (no workload uses the rotated keys, or rollout is not Auto)")
    return [f"rotated {ns}/{name}:", *lines]


def _demo_rotation(kubectl: str, kubeconfig: str, timeout: float) -> bool:
    """Rotate the first example that has a rotation policy, wait for it, and say what it did."""
    for obj in _objects(kubectl, kubeconfig):
        if not (obj.get("spec") or {}).get("rotation"):
            continue
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        request = f"demo-{int(time.time())}"
        _say(f"rotating {ns}/{name} now (annotation rotor.dev/rotate={request})")
        _kubectl(
            kubectl,
            kubeconfig,
            "-n",
            ns,
            "annotate",
            "--overwrite",
            "managedsecrets.rotor.dev",
            name,
            f"rotor.dev/rotate={request}",
        )
        deadline = time.monotonic() + timeout
        phase = None
        current = obj
        while time.monotonic() < deadline:
            current = _get(kubectl, kubeconfig, ns, "managedsecrets.rotor.dev", name)
            rot = (current.get("status") or {}).get("rotation") or {}
            if rot.get("phase") != phase:
                phase = rot.get("phase")
                _say(f"  {ns}/{name}: rotation phase {phase}")
            if rot.get("lastRotateRequest") == request and phase in ("Completed", "Failed"):
                break
            time.sleep(0.5)
        else:
            return False
        if phase != "Completed":
            for cond in (current.get("status") or {}).get("conditions") or []:
                if cond.get("type") == "Rotating":
                    _say(f"  rotation failed: {cond.get('reason')}: {cond.get('message')}")
            return False
        restarted = _restarted(kubectl, kubeconfig, ns, name, obj)
        current = _get(kubectl, kubeconfig, ns, "managedsecrets.rotor.dev", name)
        secret_name = (current.get("status") or {}).get("secretName") or name
        secret = _get(kubectl, kubeconfig, ns, "secret", secret_name)
        for line in rotation_summary(obj, current, secret, restarted):
            _say(line)
        return True
    return True


def _restarted(kubectl: str, kubeconfig: str, ns: str, name: str, before: dict[str, Any]) -> list[str]:
    """The workloads Rotor restarted after the rotation (status.rollout.restarted, once it moved)."""
    if ((before.get("spec") or {}).get("rollout") or {}).get("strategy", "None") == "None":
        return []
    old = ((before.get("status") or {}).get("rollout") or {}).get("lastRestartTime")
    deadline = time.monotonic() + RESTART_WAIT_SECONDS
    while time.monotonic() < deadline:
        rollout = (_get(kubectl, kubeconfig, ns, "managedsecrets.rotor.dev", name).get("status") or {}).get(
            "rollout"
        ) or {}
        if rollout.get("lastRestartTime") and rollout.get("lastRestartTime") != old:
            return [str(r) for r in rollout.get("restarted") or []]
        time.sleep(0.5)
    return []
