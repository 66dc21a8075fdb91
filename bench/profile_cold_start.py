"""Profile the operator through a cold start of N ManagedSecrets.

.venv/bin/python bench/profile_cold_start.py 1000            # pyinstrument (event-loop thread)
.venv/bin/python bench/profile_cold_start.py 1000 --py-spy   # py-spy: every thread, CPU only
.venv/bin/python bench/profile_cold_start.py 1000 --cpu-only --runs 3   # no profiler: CPU per object

py-spy (``pip install py-spy``) samples all threads, so the backend thread pool shows too; the
report lists where the CPU went, by own time and by inclusive time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import run as bench
from rotor.devenv.environment import LocalEnvironment


def summarize_raw(raw: str, top: int = 30) -> str:
    """py-spy's raw format is one collapsed stack per line ("frame;frame;... count"); sum the
    samples by function, as the innermost frame (own time) and anywhere on the stack (inclusive)."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    paths: dict[str, int] = {}
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [
            f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0].split("/")[-1] + ")"
            for f in stack.split(";")
            if " (" in f
        ]
        if frames:
            own[frames[-1]] = own.get(frames[-1], 0) + samples
            path = " < ".join(reversed(frames[-4:]))
            paths[path] = paths.get(path, 0) + samples
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + samples
    lines = [f"{total} samples of CPU (all threads)", "", "own time:"]
    for name, count in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {100 * count / total:5.1f}%  {name}")
    lines += ["", "inclusive:"]
    for name, count in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {100 * count / total:5.1f}%  {name}")
    lines += ["", "hottest stacks (innermost first):"]
    for name, count in sorted(paths.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {100 * count / total:5.1f}%  {name}")
    return "\n".join(lines)


#: frames where the event loop waits (idle, not CPU)
IDLE = ("epoll.poll", "select.select", "KqueueSelector.select", "EpollSelector.select")


def _package(path: str | None) -> str:
    """The top-level package of a source file (``rotor.services``, ``aiohttp``, ``asyncio``)."""
    if not path:
        return "<built-in>"
    parts = path.replace("\\", "/").split("/")
    for marker in ("site-packages", "operator"):
        if marker in parts:
            rest = parts[parts.index(marker) + 1 :]
            if rest and rest[0] == "rotor" and len(rest) > 2:
                return ".".join(rest[:2])
            return rest[0].removesuffix(".py") if rest else path
    for i, part in enumerate(parts):
        if part.startswith("python3"):
            rest = parts[i + 1 :]
            return ("stdlib " + rest[0].removesuffix(".py")) if rest else path
    return parts[-1]


def summarize_session(path: Path, top: int = 30) -> str:
    """A pyinstrument session summed up: busy time (the event loop's waits left out) by package
    and by function, as own time, and Rotor's functions inclusive."""
    from pyinstrument.session import Session

    root = Session.load(path).root_frame(trim_stem=False)
    assert root is not None
    own_fn: dict[str, float] = {}
    own_pkg: dict[str, float] = {}
    rotor_incl: dict[str, float] = {}
    idle = 0.0
    stack = [(root, frozenset())]
    while stack:
        frame, seen = stack.pop()
        name = f"{frame.function} ({_package(frame.file_path)})"
        if frame.function in IDLE or any(frame.function.endswith(i) for i in IDLE):
            idle += frame.time
            continue
        if frame.is_synthetic:  # [self] time is the parent's own; [await] is waiting
            if frame.function == "[await]":
                idle += frame.time
            continue
        self_time = frame.total_self_time - sum(
            c.time for c in frame.children if c.is_synthetic and c.function == "[await]"
        )
        own_fn[name] = own_fn.get(name, 0.0) + self_time
        pkg = _package(frame.file_path)
        own_pkg[pkg] = own_pkg.get(pkg, 0.0) + self_time
        if pkg.startswith("rotor") and name not in seen:
            rotor_incl[name] = rotor_incl.get(name, 0.0) + frame.time
            seen = seen | {name}
        stack.extend((child, seen) for child in frame.children)
    busy = sum(own_fn.values())
    lines = [f"{root.time:.1f}s sampled, {idle:.1f}s of it the event loop waiting, {busy:.1f}s busy", ""]
    lines.append("busy time by package (own time):")
    for name, t in sorted(own_pkg.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {100 * t / busy:5.1f}%  {t:6.2f}s  {name}")
    lines += ["", "busy time by function (own time):"]
    for name, t in sorted(own_fn.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {100 * t / busy:5.1f}%  {t:6.2f}s  {name}")
    lines += ["", "Rotor's functions (inclusive):"]
    for name, t in sorted(rotor_incl.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {100 * t / busy:5.1f}%  {t:6.2f}s  {name}")
    return "\n".join(lines)


async def main(n: int, spy: bool = False, cpu_only: bool = False, runs: int = 1) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="rotor-profile-"))
    env = LocalEnvironment(workdir)
    env.start()
    bench.apply_crds(env)
    cluster = await bench.Cluster.connect(str(env.kubeconfig))
    try:
        bench.seed_vault(env, "prof", n)
        for run in range(runs):
            ns = f"profile-{run}"
            await bench.vault_namespace(cluster, env, ns)
            await bench.create_many(
                cluster, ns, [bench.ms_doc(f"m{i}", "vault", f"prof/p{i}", "1h") for i in range(n)]
            )
            await cold_start(env, workdir, ns, n, spy=spy, cpu_only=cpu_only)
            if run < runs - 1:
                await bench.delete_and_wait(cluster, ns)
    finally:
        await cluster.close()
        env.stop()


async def cold_start(
    env: LocalEnvironment, workdir: Path, ns: str, n: int, *, spy: bool, cpu_only: bool
) -> None:
    """One cold start of the operator over ``n`` ManagedSecrets in ``ns``: its CPU per object
    (user + system, from /proc; a profiler's own cost included unless ``cpu_only``)."""
    # outside the environment's work dir, which goes when the environment stops
    report = Path(tempfile.mkdtemp(prefix="rotor-profile-")) / (
        f"profile-{ns}.txt" if spy else f"profile-{ns}.pyisession"
    )
    operator = [
        "-m",
        "rotor.cli.main",
        "run",
        "--no-leader-elect",
        "--log-level",
        "warning",
        "--metrics-addr",
        f"127.0.0.1:{bench.free_port()}",
    ]
    if cpu_only:
        profiler = [sys.executable]
    elif spy:
        profiler = [
            str(Path(sys.executable).parent / "py-spy"),
            "record",
            "--threads",
            "--nonblocking",
            "--format",
            "raw",
            "-r",
            "200",
            "-o",
            str(report),
            "--",
            sys.executable,
        ]
    else:
        profiler = [sys.executable, "-m", "pyinstrument", "-r", "session", "-o", str(report)]
    proc = subprocess.Popen(
        [*profiler, *operator],
        env=dict(os.environ, KUBECONFIG=str(env.kubeconfig), ROTOR_HASH_KEY="p"),
    )
    started = time.monotonic()
    await bench.wait_all_ready(str(env.kubeconfig), ns, n)
    elapsed = time.monotonic() - started
    # the operator is the profiler's child under py-spy; pyinstrument runs in the process itself
    cpu = bench.pid_cpu_seconds(proc.pid) if not spy else 0.0
    print(
        f"cold start of {n}: {elapsed:.1f}s, operator CPU {cpu:.2f}s = {1000 * cpu / n:.2f} ms per object"
        + ("" if cpu_only else " (profiler included)"),
        flush=True,
    )
    proc.send_signal(2)
    proc.wait(60)
    if not cpu_only:
        print(summarize_raw(report.read_text()) if spy else summarize_session(report))
        if not spy:
            print(f"(the whole session: pyinstrument --load {report})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("n", type=int, nargs="?", default=1000)
    parser.add_argument("--py-spy", action="store_true", help="py-spy (every thread) instead of pyinstrument")
    parser.add_argument("--cpu-only", action="store_true", help="no profiler: the operator's CPU per object")
    parser.add_argument("--runs", type=int, default=1, help="cold starts, each in a fresh namespace")
    args = parser.parse_args()
    asyncio.run(main(args.n, spy=args.py_spy, cpu_only=args.cpu_only, runs=args.runs))
