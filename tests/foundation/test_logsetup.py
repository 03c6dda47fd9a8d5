"""Logging: key=value and JSON lines, and secrets redacted from every record."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bridge.logsetup import TRACE, redact, register_secret, setup_logging


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    setup_logging("debug", "text", stream=buffer)
    yield buffer
    for handler in list(root.handlers):
        if handler.get_name() == "graph-mail-bridge":
            root.removeHandler(handler)
    root.handlers[:] = before[0]
    root.setLevel(before[1])


def test_registered_secret_is_redacted_in_message_args_extras_and_tracebacks(
    stream: io.StringIO,
) -> None:
    secret = "registered-secret-7f3a9c"
    register_secret(secret)
    log = logging.getLogger("bridge.test")
    log.info("token is %s", secret, extra={"detail": f"x{secret}y"})
    try:
        raise RuntimeError(f"failed with {secret}")
    except RuntimeError:
        log.exception("boom")
    output = stream.getvalue()
    assert secret not in output
    assert output.count("***") >= 3
    assert "RuntimeError: failed with ***" in output


@pytest.mark.parametrize(
    ("line", "hidden"),
    [
        ("POST /token client_secret=abc.DEF~123&grant_type=x", "abc.DEF~123"),
        ("Authorization: Bearer eyJ0eXAiOiJKV1Qi.eyJhdWQiOi.sig-_x", "eyJ0eXAiOiJKV1Qi"),
        ('{"password": "hunter2-long"}', "hunter2-long"),
        ("C: AUTH PLAIN AGFsaWNlAHNlY3JldHBhc3M=", "AGFsaWNlAHNlY3JldHBhc3M="),
        ("C: a1 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==", "AGFsaWNlAHNlY3JldA=="),
        ("C: a1 LOGIN alice s3cr3t-pass", "s3cr3t-pass"),
        ('C: a1 LOGIN "alice" "quoted pass"', "quoted pass"),
        ("access_token=abcdefgh123", "abcdefgh123"),
    ],
)
def test_credential_patterns(line: str, hidden: str) -> None:
    redacted = redact(line)
    assert hidden not in redacted and "***" in redacted


def test_ordinary_text_is_left_alone() -> None:
    text = "account alice connected; 3 folders synced in 1.2 s"
    assert redact(text) == text


def test_key_value_and_json_formats(stream: io.StringIO) -> None:
    logging.getLogger("bridge.imap").info("login ok", extra={"account": "alice", "peer": "a b"})
    line = stream.getvalue().strip()
    assert " level=info logger=bridge.imap " in line
    assert 'msg="login ok"' in line and "account=alice" in line and 'peer="a b"' in line

    buffer = io.StringIO()
    setup_logging("info", "json", stream=buffer)
    logging.getLogger("bridge.smtp").warning("refused %d", 5, extra={"account": "bob"})
    logging.getLogger("bridge.smtp").debug("not shown")
    lines = buffer.getvalue().strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["level"] == "warning" and record["msg"] == "refused 5"
    assert record["account"] == "bob" and record["logger"] == "bridge.smtp"
    # A second setup replaced the handler instead of adding one.
    assert stream.getvalue().strip() == line


def test_trace_level(stream: io.StringIO) -> None:
    setup_logging("trace", "text", stream=stream)
    logging.getLogger("bridge.wire").log(TRACE, "S: * OK")
    assert "level=trace" in stream.getvalue()
