"""Write docs/performance.md from the raw results committed under bench/results/ (not a test).

    .venv/bin/python bench/report.py            # rewrite docs/performance.md
    .venv/bin/python bench/report.py --check    # exit 1 if docs/performance.md is not what it would write

Every figure in the page comes from a file in bench/results/, and the page names the file. The
prose is bench/performance.md.j2. The newest file of each kind is used (names sort by date):

- ``*-default.json``: ``bench/run.py --json`` with the stores' default rate limit (what users get)
- ``*-tuned.json``: the same with ``--rate-limit 5000``
- ``failover-*.json``: ``bench/failover.py --json``
- ``*notify-propagation*.txt``: ``bench/notify_propagation.py``'s output
- ``soak-writers-*.txt``: ``bench/soak.py --writers``'s output (files marked FAILED are shown as such)
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path
from typing import Any

import jinja2

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
TEMPLATE = ROOT / "bench" / "performance.md.j2"
PAGE = ROOT / "docs" / "performance.md"

#: issue targets (DESIGN §9): a default cold start within this factor of the tuned one
DEFAULT_VS_TUNED = 1.5
CPU_PER_OBJECT_MS = 2.0
FAILOVER_S = 20.0


def newest(pattern: str) -> Path | None:
    found = sorted(p for p in RESULTS.glob(pattern) if "FAILED" not in p.name)
    return found[-1] if found else None


def load_json(pattern: str) -> tuple[dict[str, Any] | None, str | None]:
    path = newest(pattern)
    if path is None:
        return None, None
    return json.loads(path.read_text()), path.name


def by_n(run: dict[str, Any] | None, section: str = "vault") -> dict[int, dict[str, Any]]:
    return {row["n"]: row for row in (run or {}).get(section) or []}


def rows_of(pattern: str, section: str) -> dict[int, dict[str, Any]]:
    """Per N, the row of the newest run (file names sort by date) that measured it, with the
    file's name and the 1-minute load average at the run's start."""
    rows: dict[int, dict[str, Any]] = {}
    for path in sorted(p for p in RESULTS.glob(pattern) if "FAILED" not in p.name):
        run = json.loads(path.read_text())
        load = (run.get("load_average_before") or ["not recorded"])[0]
        for row in run.get(section) or []:
            rows[row["n"]] = dict(row, file=path.name, load=load)
    return rows


def notify_rows(path: Path) -> list[dict[str, str]]:
    """The table rows of one notify_propagation.py output: p90 is absent from older outputs."""
    lines = path.read_text().splitlines()
    header = next((line for line in lines if line.startswith("| upstream change")), None)
    if header is None:
        return []
    names = [cell.strip() for cell in header.strip("|").split("|")]
    rows = []
    for line in lines[lines.index(header) + 2 :]:
        if not line.startswith("| "):
            continue
        cells = dict(zip(names, (c.strip() for c in line.strip("|").split("|")), strict=False))
        rows.append(
            {
                "what": cells.get("upstream change -> Secret", "?"),
                "changes": cells.get("changes", "?"),
                "p50": cells.get("p50 (s)", "-"),
                "p90": cells.get("p90 (s)", "(not printed)"),
                "p99": cells.get("p99 (s)", "-"),
                "max": cells.get("max (s)", "-"),
            }
        )
    return rows


def soak_summary(path: Path) -> dict[str, Any]:
    text = path.read_text()

    def grab(pattern: str) -> str | None:
        match = re.search(pattern, text, re.MULTILINE)
        return match.group(1) if match else None

    return {
        "file": path.name,
        "header": grab(r"^(510 ManagedSecrets.*|\d+ ManagedSecrets Ready.*)$"),
        "violations": grab(r"^invariant violations: (\d+)"),
        "claims_lost": grab(r"^claims lost \(both operators\): (\d+)"),
        "versions": grab(r"Secret versions watched: (\d+)"),
        "touched": grab(r"^touched: (\{.*?\})"),
        "memory": re.findall(r"^memory of operator (\w): .*\(growth ([+-][\d.]+ MiB)\)", text, re.MULTILINE),
        "failed": "FAILED" in path.name,
    }


def rss_per_object_kib(rows: dict[int, dict[str, Any]]) -> float | None:
    """The slope of RSS against N (least squares) over the sizes measured, in KiB per object."""
    points = [(n, row["rss_mib"]) for n, row in rows.items() if row.get("rss_mib") is not None]
    if len(points) < 2:
        return None
    mean_n = statistics.fmean(n for n, _ in points)
    mean_r = statistics.fmean(r for _, r in points)
    den = sum((n - mean_n) ** 2 for n, _ in points)
    if den == 0:
        return None
    slope = sum((n - mean_n) * (r - mean_r) for n, r in points) / den
    return round(slope * 1024, 1)


def context() -> dict[str, Any]:
    default, default_file = load_json("*-default.json")
    tuned, tuned_file = load_json("*-tuned.json")
    failover, failover_file = load_json("failover-*.json")
    d_rows, t_rows = rows_of("*-default.json", "vault"), rows_of("*-tuned.json", "vault")
    files = sorted({row["file"] for row in [*d_rows.values(), *t_rows.values()]})
    sizes = sorted(set(d_rows) | set(t_rows))
    cold = []
    for n in sizes:
        d, t = d_rows.get(n), t_rows.get(n)
        ratio = round(d["cold_start_s"] / t["cold_start_s"], 2) if d and t else None
        cold.append({"n": n, "default": d, "tuned": t, "ratio": ratio})
    cpu = []
    for n in sizes:
        for label, row in (("default", d_rows.get(n)), ("tuned", t_rows.get(n))):
            if row and row.get("cold_cpu_ms_per_object"):
                cpu.append({"n": n, "label": label, "split": row["cold_cpu_ms_per_object"]})
    restart = [
        dict(row, label=label)
        for label in ("default", "tuned")
        for _, row in sorted(rows_of(f"*-{label}.json", "restart").items())
    ]
    aws = [
        dict(row, label=label)
        for label in ("default", "tuned")
        for _, row in sorted(rows_of(f"*-{label}.json", "aws").items())
    ]
    notify = [
        {"file": path.name, "rows": notify_rows(path)}
        for path in sorted(RESULTS.glob("*notify-propagation*.txt"))
    ]
    soaks = [soak_summary(path) for path in sorted(RESULTS.glob("soak-writers-*.txt"))]
    rotor_cpu = [
        (row["n"], row["label"], row["split"].get("rotor")) for row in cpu if row["split"].get("rotor")
    ]
    measured = [(n, d_rows[n]) for n in sorted(d_rows)]
    slope = rss_per_object_kib(d_rows or t_rows)
    memory = ", ".join(f"{n}: {row['rss_mib']} MiB" for n, row in measured)
    sizing = {
        "memory": (
            f"about {slope} KiB per ManagedSecret on top of a fixed base ({memory})" if slope else memory
        ),
        "cold": ", ".join(f"{n} objects in {row['cold_start_s']} s" for n, row in measured),
        "idle": ", ".join(f"{row['idle_cpu_pct']} % of a core at {n}" for n, row in measured),
    }
    return {
        "sizing": sizing,
        "big20k": (
            dict(d_rows[20000], label="default")
            if 20000 in d_rows
            else dict(t_rows[20000], label="tuned")
            if 20000 in t_rows
            else None
        ),
        "files": files,
        "default": default,
        "default_file": default_file,
        "tuned": tuned,
        "tuned_file": tuned_file,
        "cold": cold,
        "cpu": cpu,
        "rotor_cpu": rotor_cpu,
        "restart": restart,
        "aws": aws,
        "failover": failover,
        "failover_file": failover_file,
        "notify": notify,
        "soaks": soaks,
        "rss_kib_per_object": rss_per_object_kib(d_rows or t_rows),
        "targets": {
            "default_vs_tuned": DEFAULT_VS_TUNED,
            "cpu_per_object_ms": CPU_PER_OBJECT_MS,
            "failover_s": FAILOVER_S,
        },
    }


def render() -> str:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE.parent)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # Markdown, not HTML
    )
    return environment.get_template(TEMPLATE.name).render(**context())


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    page = render()
    if args.check:
        if PAGE.read_text() != page:
            print(f"{PAGE.relative_to(ROOT)} is not what bench/report.py writes: run it", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(page)
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
