"""Logging configuration: key=value or JSON lines, and redaction of secrets.

Owns the root handler set-up, the ``TRACE`` level for wire dumps, and ``RedactingFilter``,
which rewrites every record before any handler formats it:

* values registered with ``register_secret`` (whoever loads a secret calls it: the config
  loader for tokens and keys, the CLI and the Graph client for client secrets) are
  replaced wherever they occur;
* patterns that look like credentials are replaced even when nobody registered them:
  ``Bearer <token>``, ``client_secret=...``, ``password=...``, ``client_assertion=...``,
  ``access_token``/``refresh_token`` fields, and the base64 payload of IMAP
  ``AUTHENTICATE PLAIN`` / SMTP ``AUTH PLAIN|LOGIN`` and IMAP ``LOGIN user pass``.

Must import nothing from the bridge: every layer may log, so this stays a leaf.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from typing import IO, Any, Final

__all__ = [
    "REDACTED",
    "TRACE",
    "JsonFormatter",
    "KeyValueFormatter",
    "RedactingFilter",
    "redact",
    "register_secret",
    "setup_logging",
]

TRACE: Final = 5
logging.addLevelName(TRACE, "TRACE")
REDACTED: Final = "***"

# Secrets shorter than this are not registered: replacing "a" or "42" everywhere would
# shred ordinary log text and protects nothing a guesser could not try anyway.
_MIN_SECRET_LEN: Final = 6

_secrets_lock = threading.Lock()
_secrets: set[str] = set()
_secret_re: re.Pattern[str] | None = None

_PATTERNS: Final[list[tuple[re.Pattern[str], str]]] = [
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9\-._~+/]+=*"), r"\1 " + REDACTED),
    (
        re.compile(
            r"(?i)\b(client_secret|client_assertion|password|passwd|pwd|access_token|"
            r"refresh_token|id_token|admin_token|token|encryption_key)"
            r"(\"?\s*[=:]\s*\"?)([^\s\"'&,;}]+)"
        ),
        r"\1\2" + REDACTED,
    ),
    # SMTP "AUTH PLAIN <b64>" / "AUTH LOGIN <b64>", IMAP "AUTHENTICATE PLAIN <b64>" (SASL-IR)
    (
        re.compile(r"(?i)\b(AUTH(?:ENTICATE)?\s+(?:PLAIN|LOGIN|XOAUTH2))\s+[A-Za-z0-9+/=]+"),
        r"\1 " + REDACTED,
    ),
    # IMAP "tag LOGIN user password": keep the user, hide the password (RFC 3501 §6.2.3)
    (re.compile(r"(?i)(\bLOGIN\s+(?:\"[^\"]*\"|\S+))\s+(\"[^\"]*\"|\S+)"), r"\1 " + REDACTED),
]


def register_secret(value: str | None) -> None:
    """Redact ``value`` from every log record from now on."""
    global _secret_re
    if not value or len(value) < _MIN_SECRET_LEN:
        return
    with _secrets_lock:
        if value in _secrets:
            return
        _secrets.add(value)
        # Longest first so a secret that contains another is replaced whole.
        ordered = sorted(_secrets, key=len, reverse=True)
        _secret_re = re.compile("|".join(re.escape(s) for s in ordered))


def redact(text: str) -> str:
    """Apply registered secrets and credential patterns to ``text``."""
    pattern = _secret_re
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    for regex, replacement in _PATTERNS:
        text = regex.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Freezes the message (args merged in) and the exception text, then redacts both."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not lose the record
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        # Exception objects may carry secrets in their args; the text is already captured.
        record.exc_info = None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, key, redact(value))
        return True


_STANDARD_ATTRS: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys() | {"message", "asctime"}
)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS}


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + (
        f".{int(record.msecs):03d}Z"
    )


def _kv_value(value: object) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\n\t'):
        return json.dumps(text, ensure_ascii=False)
    return text


def _base_fields(record: logging.LogRecord) -> dict[str, object]:
    return {
        "ts": _timestamp(record),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }


class KeyValueFormatter(logging.Formatter):
    """``ts=... level=info logger=bridge.imap msg="..." account=alice`` (logfmt style)."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _base_fields(record)
        fields.update(_extras(record))
        line = " ".join(f"{k}={_kv_value(v)}" for k, v in fields.items())
        if record.exc_text:
            line += " exc=" + json.dumps(record.exc_text, ensure_ascii=False)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _base_fields(record)
        for key, value in _extras(record).items():
            fields[key] = value if isinstance(value, (int, float, bool, type(None))) else str(value)
        if record.exc_text:
            fields["exc"] = record.exc_text
        return json.dumps(fields, ensure_ascii=False)


_LEVELS: Final = {
    "trace": TRACE,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def setup_logging(level: str | int, fmt: str = "text", stream: IO[str] | None = None) -> None:
    """Replace the root logger's handlers with one redacting handler on ``stream``.

    ``fmt`` is ``text`` (key=value) or ``json``. Idempotent: calling it again (config
    reload) swaps the handler rather than stacking another one.
    """
    numeric = _LEVELS[level.lower()] if isinstance(level, str) else level
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    # On the handler, not a logger: a filter on a logger does not see records that
    # propagate from its children, a handler filter sees every record it will write.
    handler.addFilter(RedactingFilter())
    handler.set_name("graph-mail-bridge")
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == "graph-mail-bridge":
            # Not closed: the stream belongs to whoever passed it in.
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    # httpx/httpcore log every request URL at INFO/DEBUG. Graph URLs carry message ids
    # and, for upload sessions, a pre-authenticated ``authtoken``: keep them out of the
    # logs unless someone asks for TRACE. The Graph client logs what matters itself.
    quiet = logging.WARNING if numeric > TRACE else numeric
    for name in ("httpx", "httpcore", "msal", "aiohttp.access", "hpack"):
        logging.getLogger(name).setLevel(quiet)
