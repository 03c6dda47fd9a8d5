"""``graph-mail-bridge demo`` as a new user meets it: a subprocess, then imaplib and smtplib."""

from __future__ import annotations

import imaplib
import json
import os
import signal
import smtplib
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import pytest


def _start_demo(directory: Path, settings: Path) -> subprocess.Popen[bytes]:
    settings.unlink(missing_ok=True)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bridge",
            "demo",
            "--dir",
            str(directory),
            "--imap-port",
            "0",
            "--smtp-port",
            "0",
            "--http-port",
            "0",
            "--settings-json",
            str(settings),
            "--new-mail-interval",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _wait_for_settings(proc: subprocess.Popen[bytes], settings: Path) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"demo exited early: {proc.stderr.read().decode()[-3000:]}")
        if settings.exists() and settings.stat().st_size:
            return json.loads(settings.read_text())
        time.sleep(0.1)
    raise AssertionError("demo did not write its settings within 60 s")


def _stop(proc: subprocess.Popen[bytes]) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out.decode(), err.decode()


def _wait_until(predicate, timeout: float = 30.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.timeout(240)
def test_demo_serves_imap_and_smtp_and_keeps_state(tmp_path: Path) -> None:
    directory, settings_path = tmp_path / "demo", tmp_path / "settings.json"
    proc = _start_demo(directory, settings_path)
    try:
        settings = _wait_for_settings(proc, settings_path)
        alice = settings["accounts"][0]
        support = settings["accounts"][1]
        imap = imaplib.IMAP4(settings["imap"]["host"], settings["imap"]["port"])
        imap.login(alice["login"], alice["password"])
        typ, listing = imap.list()
        assert typ == "OK"
        names = b"\n".join(listing)
        for expected in (
            b'"INBOX"',
            b"\\Sent",
            b"\\Drafts",
            b"\\Trash",
            b"\\Junk",
            b"Archive/2026",
        ):
            assert expected in names, names

        def inbox_count() -> int:
            typ, data = imap.select("INBOX")
            assert typ == "OK"
            return int(data[0])

        first = _wait_until(inbox_count, what="the demo INBOX to be synced")
        # New mail arrives every second in this run; the bridge picks it up by polling.
        _wait_until(lambda: inbox_count() > first, timeout=60, what="periodic demo mail")
        typ, data = imap.uid("SEARCH", "SUBJECT", "invoice")
        assert typ == "OK" and data[0].split(), "the demo invoice is searchable"
        uid = data[0].split()[0].decode()
        typ, fetched = imap.uid("FETCH", uid, "(RFC822.SIZE BODY.PEEK[])")
        size = int(fetched[0][0].split(b"RFC822.SIZE ")[1].split()[0])
        assert size == len(fetched[0][1])
        imap.logout()

        message = EmailMessage()
        message["From"] = alice["email"]
        message["To"] = support["email"]
        message["Subject"] = "Sent through the demo"
        message.set_content("Hello support, from the demo test.\n")
        with smtplib.SMTP(settings["smtp"]["host"], settings["smtp"]["port"]) as smtp:
            smtp.login(alice["login"], alice["password"])
            smtp.send_message(message)

        shared = imaplib.IMAP4(settings["imap"]["host"], settings["imap"]["port"])
        shared.login(support["login"], support["password"])

        def arrived() -> bool:
            shared.select("INBOX")
            typ, data = shared.search(None, "SUBJECT", '"Sent through the demo"')
            return typ == "OK" and bool(data[0].split())

        _wait_until(arrived, timeout=60, what="the sent message in the shared mailbox")
        shared.logout()
    finally:
        code, out, err = _stop(proc)
    assert code == 0, err[-3000:]
    assert "graph-mail-bridge demo is running" in out
    # Secrets of the simulated app never reach the logs.
    seed = json.loads((directory / "demo.json").read_text())
    assert seed["client_secret"] not in err and seed["client_secret"] not in out

    # A second start shows the same accounts (same passwords) and the same UIDs.
    proc = _start_demo(directory, settings_path)
    try:
        again = _wait_for_settings(proc, settings_path)
        assert again["accounts"][0]["password"] == alice["password"]
        imap = imaplib.IMAP4(again["imap"]["host"], again["imap"]["port"])
        imap.login(alice["login"], alice["password"])
        imap.select("INBOX")
        typ, data = imap.uid("SEARCH", "SUBJECT", "invoice")
        assert data[0].split()[0].decode() == uid
        imap.logout()
    finally:
        code, _, err = _stop(proc)
    assert code == 0, err[-3000:]
