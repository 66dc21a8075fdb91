"""``rotor``: run the operator, look at what it manages, and act on it."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NoReturn

COMMANDS = ("run", "demo", "status", "actions", "report", "importer", "rollback")


class Parser(argparse.ArgumentParser):
    """Usage errors in one line, like every other error, with where to read more; exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="rotor", description="Sync and rotate secrets from Vault and AWS.")
    from rotor import __version__

    parser.add_argument("--version", action="version", version=f"rotor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"rotor.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"rotor.cli.{name}":
                continue
            raise
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
