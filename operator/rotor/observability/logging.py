"""JSON-lines logs by default (text for development), and the audit line.

Audit lines name the ManagedSecret, the store, the remote key and version, and the verb. They
never carry a value: the function signature has nowhere to put one.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

AUDIT = logging.getLogger("rotor.audit")

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value if isinstance(value, str | int | float | bool | type(None)) else str(value)
        if record.exc_info and record.exc_info[0] is not None:
            out["error"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
            # The traceback: code lines and exception messages only (no local variables). Rotor's
            # exception messages are value-free, and provider errors drop the library exception
            # they come from (``raise ... from None``), so the chain cannot carry a value either.
            out["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(out, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{k}={v}" for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")
        )
        base = f"{time.strftime('%H:%M:%S', time.localtime(record.created))} {record.levelname:<7} {record.name}: "
        text = base + record.getMessage() + (f" [{extras}]" if extras else "")
        if record.exc_info and record.exc_info[0] is not None:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Client libraries log request and response bodies at DEBUG, and those can hold Secret data:
    # they never log below WARNING, whatever the level asked for.
    for noisy in (
        "urllib3",
        "botocore",
        "boto3",
        "hvac",
        "aiohttp",
        "asyncio",
        "kubernetes_asyncio",
        "requests",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # kopf logs every handler call at INFO; its warnings and errors are what matter
    logging.getLogger("kopf").setLevel(max(logging.INFO, root.level))
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)


def audit(
    verb: str,
    *,
    managed_secret: str | None,
    store: str | None,
    key: str | None,
    version: str | None = None,
    result: str = "success",
    target: str | None = None,
) -> None:
    """One line per backend read and per Secret write. There is deliberately no value parameter."""
    AUDIT.info(
        "audit %s",
        verb,
        extra={
            "audit": True,
            "verb": verb,
            "managedSecret": managed_secret,
            "store": store,
            "remoteKey": key,
            "version": version,
            "result": result,
            "target": target,
        },
    )
