"""Every secret value a test uses is registered here; the last integration test scans all that
was captured (operator logs, Events, statuses, metrics, CLI output) for any of them."""

from __future__ import annotations


class LeakRegistry:
    def __init__(self) -> None:
        self.values: set[str] = set()
        self.outputs: list[tuple[str, str]] = []  # (what, text) captured along the way, e.g. CLI output

    def add(self, *values: str | bytes) -> None:
        for value in values:
            text = value.decode(errors="replace") if isinstance(value, bytes) else value
            if len(text) >= 8:  # shorter strings occur by chance in any log
                self.values.add(text)

    def capture(self, what: str, text: str) -> None:
        self.outputs.append((what, text))

    def find(self, text: str) -> list[str]:
        return sorted(v for v in self.values if v in text)
