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
    report = workdir / f"profile-{ns}.txt"
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
        profiler = [sys.executable, "-m", "pyinstrument", "-r", "text", "--show-all", "-o", str(report)]
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
        print(summarize_raw(report.read_text()) if spy else report.read_text()[:20000])


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
