"""Profile the operator through a cold start of N ManagedSecrets.

.venv/bin/python bench/profile_cold_start.py 1000            # pyinstrument (event-loop thread)
.venv/bin/python bench/profile_cold_start.py 1000 --py-spy   # py-spy: every thread, CPU only

py-spy (``pip install py-spy``) samples all threads, so the backend thread pool shows too; the
report lists where the CPU went, by own time and by inclusive time.
"""

from __future__ import annotations

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


async def main(n: int, spy: bool = False) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="rotor-profile-"))
    env = LocalEnvironment(workdir)
    env.start()
    bench.apply_crds(env)
    cluster = await bench.Cluster.connect(str(env.kubeconfig))
    try:
        bench.seed_vault(env, "prof", n)
        ns = "profile"
        await bench.vault_namespace(cluster, env, ns)
        await bench.create_many(
            cluster, ns, [bench.ms_doc(f"m{i}", "vault", f"prof/p{i}", "1h") for i in range(n)]
        )
        report = workdir / "profile.txt"
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
        profiler = (
            [
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
            if spy
            else [sys.executable, "-m", "pyinstrument", "-o", str(report)]
        )
        proc = subprocess.Popen(
            [*profiler, *operator],
            env=dict(os.environ, KUBECONFIG=str(env.kubeconfig), ROTOR_HASH_KEY="p"),
        )
        started = time.monotonic()
        await bench.wait_all_ready(str(env.kubeconfig), ns, n)
        print(f"cold start of {n}: {time.monotonic() - started:.1f}s", flush=True)
        proc.send_signal(2)
        proc.wait(60)
        print(summarize_raw(report.read_text()) if spy else report.read_text()[:12000])
    finally:
        await cluster.close()
        env.stop()


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    asyncio.run(main(int(args[0]) if args else 1000, spy="--py-spy" in sys.argv))
