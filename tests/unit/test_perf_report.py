"""docs/performance.md is what bench/report.py writes from the committed raw results."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_performance_page_is_generated_from_the_committed_results() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "report.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_every_result_the_page_links_to_is_committed() -> None:
    page = (ROOT / "docs" / "performance.md").read_text()
    linked = {part.split(")", 1)[0] for part in page.split("](../bench/results/")[1:]}
    assert linked, "the page cites no raw result"
    tracked = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "bench/results"], capture_output=True, text=True, check=True
    ).stdout.split()
    missing = sorted(name for name in linked if name and f"bench/results/{name}" not in tracked)
    assert not missing, f"docs/performance.md cites files that are not committed: {missing}"
