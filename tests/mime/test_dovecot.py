"""Our ENVELOPE, BODY, BODYSTRUCTURE and sections against a real Dovecot.

Dovecot's ``imap`` binary runs in PREAUTH mode on a pipe (no network, no root-owned
paths: a temporary config and maildir), fetches the same messages, and the answers
are compared value for value. Dovecot is the reference most IMAP clients are tested
against. The differences we chose on purpose (see bridge/mime/bodystructure.py) are
kept out of the inputs: invalid Content-Type / multipart without boundary (we say
text/plain), bare-LF mail (Dovecot counts CRLF), ``n.1`` on a leaf (Dovecot is
lenient, we follow RFC 3501), and Dovecot lowercasing BODY (sometimes BODYSTRUCTURE) of
single-part messages.

dovecot-imapd is part of the project's test environment (see the common brief).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bridge.mime import (
    PartKind,
    body_structures,
    envelope,
    extract_section,
    find_part,
    parse_structure,
)
from tests.corpus import KINDS, corpus_message

from .imap_values import fetch_items, split_fetches
from .messages import NESTED, RFC3501_ENVELOPE_MESSAGE, crlf, rfc3501_bodystructure_message

DOVECOT_IMAP = "/usr/lib/dovecot/imap"

MESSAGES: list[bytes] = [
    NESTED.replace(b"Content-Disposition: inline\r\n", b""),
    RFC3501_ENVELOPE_MESSAGE,
    rfc3501_bodystructure_message(),
    crlf(
        'From: foo\nTo: <>, a@, @b, "john smith"@x.y, John Q. Public <jqp@x>, a@b (Name Here)\n'
        'Cc:\nBcc: "", Bare Phrase\nReply-To: Grp: ;\nSender: <@a:x@y>\nSubject:\n'
        "Subject: second\nMessage-ID: <x@y>\n\nb\n"
    ),
    crlf("Content-Type: multipart/mixed; boundary=e\n\n--e--\n"),
    crlf("No header here at all\nand some more text\n"),
] + [
    corpus_message(kind, seed)
    for kind in KINDS
    if kind != "malformed_bad_type"
    for seed in ((1, 2, 3) if kind != "large" else (1,))
]

SECTIONS = (
    "BODY[] BODY[HEADER] BODY[TEXT] BODY[1] BODY[1.MIME] BODY[2] BODY[2.MIME] BODY[1.1] "
    "BODY[2.1] BODY[2.2] BODY[2.HEADER] BODY[2.TEXT] BODY[2.1.MIME] BODY[2.2.1] BODY[3] "
    "BODY[3.1] BODY[HEADER.FIELDS (From Subject References)] "
    "BODY[HEADER.FIELDS.NOT (To Cc Date)] BODY[2.HEADER.FIELDS (Subject)] BODY[9]"
)


def _run_dovecot(messages: list[bytes], commands: list[str]) -> bytes:
    root = tempfile.mkdtemp(prefix="mime-dovecot-", dir="/tmp")
    try:
        os.chmod(root, 0o755)
        mail = os.path.join(root, "mail")
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(mail, sub))
        for i, message in enumerate(messages, 1):
            with open(os.path.join(mail, "cur", f"{1000 + i}.m{i}.test:2,S"), "wb") as f:
                f.write(message)
        # Dovecot refuses to run mail processes as root; use nobody then.
        user = "nobody" if os.getuid() == 0 else pwd.getpwuid(os.getuid()).pw_name
        entry = pwd.getpwnam(user)
        config = os.path.join(root, "dovecot.conf")
        with open(config, "w") as f:
            f.write(
                f"mail_location = maildir:{mail}\nbase_dir = {root}/run\n"
                f"log_path = {root}/log\nssl = no\nprotocols = imap\n"
                f"mail_uid = {entry.pw_uid}\nmail_gid = {entry.pw_gid}\n"
                "first_valid_uid = 0\nfirst_valid_gid = 0\n"
            )
        if os.getuid() == 0:
            for path, dirs, files in os.walk(root):
                for name in dirs + files:
                    os.chown(os.path.join(path, name), entry.pw_uid, entry.pw_gid)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        script = "a SELECT INBOX\r\n"
        script += "".join(f"c{i} {command}\r\n" for i, command in enumerate(commands))
        script += "z LOGOUT\r\n"
        # stdin stays open until the LOGOUT is answered: Dovecot treats EOF on its input
        # as a disconnect and may drop output still queued (seen on a loaded machine).
        proc = subprocess.Popen(
            [DOVECOT_IMAP, "-c", config],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={"USER": user, "HOME": root, "PATH": "/usr/bin:/bin"},
        )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(script.encode("ascii"))
        proc.stdin.flush()
        output = b""
        deadline = time.monotonic() + 60
        while b"\r\nz OK" not in output and time.monotonic() < deadline:
            chunk = proc.stdout.read1(1 << 16)
            if not chunk:
                break
            output += chunk
        proc.stdin.close()
        output += proc.stdout.read()
        errors = proc.stderr.read() if proc.stderr is not None else b""
        proc.wait(timeout=60)
        assert b"z OK" in output, output[-500:] + errors[-500:]
        return output
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def dovecot() -> Iterator[tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]]]]:
    assert os.path.exists(DOVECOT_IMAP), "dovecot-imapd is part of the test environment"
    # One session per FETCH: Dovecot runs pipelined FETCHes concurrently and would
    # interleave their responses.
    first = _run_dovecot(MESSAGES, ["FETCH 1:* (ENVELOPE BODY BODYSTRUCTURE RFC822.SIZE)"])
    second = _run_dovecot(MESSAGES, [f"FETCH 1:* ({SECTIONS})"])
    summaries = {n: fetch_items(r) for n, r in split_fetches(first).items()}
    sections = {n: fetch_items(r) for n, r in split_fetches(second).items()}
    assert len(summaries) == len(sections) == len(MESSAGES)
    yield summaries, sections


def _lower(value: Any) -> Any:
    if isinstance(value, tuple):
        return tuple(_lower(v) for v in value)
    return value.lower() if isinstance(value, str) else value


@pytest.mark.parametrize("index", range(len(MESSAGES)))
def test_summary_values_match_dovecot(index: int, dovecot: Any) -> None:
    message = MESSAGES[index]
    theirs = dovecot[0][index + 1]
    basic, extended = body_structures(message)
    if parse_structure(message).kind is PartKind.MULTIPART:
        assert extended == theirs["BODYSTRUCTURE"]
    else:
        # for a plain single-part message Dovecot may answer from its "default
        # bodystructure" shortcut, lowercased; compare case-insensitively there
        assert _lower(extended) == _lower(theirs["BODYSTRUCTURE"])
    assert _lower(basic) == _lower(theirs["BODY"])
    assert envelope(message).to_imap() == _strip_message_id(theirs["ENVELOPE"])
    assert len(message) == theirs["RFC822.SIZE"]


def _strip_message_id(env: tuple[Any, ...]) -> tuple[Any, ...]:
    # Dovecot keeps trailing blanks of Message-ID; we strip both ends
    message_id = env[9]
    return (*env[:9], message_id.strip() if isinstance(message_id, str) else message_id)


_SECTION = re.compile(
    r"^BODY\[([0-9.]*?)\.?(HEADER\.FIELDS\.NOT|HEADER\.FIELDS|HEADER|TEXT|MIME)?(?: \((.*)\))?\]$"
)


@pytest.mark.parametrize("index", range(len(MESSAGES)))
def test_sections_match_dovecot(index: int, dovecot: Any) -> None:
    message = MESSAGES[index]
    root = parse_structure(message)
    compared = 0
    for name, value in dovecot[1][index + 1].items():
        match = _SECTION.match(name)
        if match is None:
            continue
        path = tuple(int(n) for n in match.group(1).split(".") if n)
        parent = find_part(root, path[:-1]) if len(path) > 1 else None
        if parent is not None and parent.kind is PartKind.LEAF:
            continue  # "n.1" of a leaf: Dovecot answers the leaf, RFC 3501 has no such part
        fields = tuple((match.group(3) or "").split())
        ours = extract_section(message, path, match.group(2), fields, structure=root)
        assert ours.decode("utf-8", "replace") == value, name
        compared += 1
    assert compared >= 15
