"""Bounded session-level fuzzing of the IMAP server (issue 4 wire limits, issue 8).

``tests/wire/test_fuzz.py`` drives the sans-I/O ``ServerConnection`` alone. These
properties drive a live ``ImapSession`` over the in-memory reference backend (in each of
the three states: not authenticated, authenticated, selected), so the command handlers
behind the parser get the input too:

1. random and mutated command lines never raise out of ``ImapSession.feed``, never hang
   (every feed runs under a timeout), every byte the session writes is a well-formed
   response line, and afterwards the session still answers a ``NOOP`` with its tag;
2. a command line that is malformed by construction (unknown verb, missing argument,
   unbalanced parenthesis, bad sequence set, unterminated quoted string, a known verb
   with a junk argument) is answered with exactly one tagged ``BAD`` for its tag — or
   ``* BAD`` when the line has no tag — and nothing else changes.

The run is bounded (``max_examples``, derandomised so CI is reproducible); the long
run of the wire fuzzer is documented in ``bench/``.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.backend.memory import MemoryAuthenticator, MemoryBackend
from bridge.imap.session import ImapSession, LoginThrottle

FEED_TIMEOUT = 5.0  # seconds: far above any honest command on the memory backend
STATES = ("not-authenticated", "authenticated", "selected")
TAG = st.from_regex(r"[A-Za-z0-9.]{1,8}", fullmatch=True).filter(lambda t: t != "zz9")
# RFC 3501 §9: tag = 1*<any ASTRING-CHAR except "+">; ASTRING-CHAR is any CHAR but CTL, SP
# and ( ) { % * " \ — "[", "]" and "}" included.
_RESPONSE = re.compile(rb'^(\* |\+ |\+$|[^\x00-\x20\x7f-\xff(){%*"\\+]+ (OK|NO|BAD|BYE)\b)')
_LITERAL_END = re.compile(rb"\{(\d+)\}$")


@dataclass
class Wire:
    data: bytearray = field(default_factory=bytearray)

    async def send(self, chunk: bytes) -> None:
        self.data += chunk

    def take(self) -> bytes:
        out = bytes(self.data)
        self.data.clear()
        return out


def response_lines(data: bytes) -> list[bytes]:
    """Split server output into response lines, skipping literal payloads."""
    lines: list[bytes] = []
    pos = 0
    while pos < len(data):
        end = data.find(b"\r\n", pos)
        assert end >= 0, f"response not terminated by CRLF: {data[pos:]!r}"
        line = data[pos:end]
        pos = end + 2
        match = _LITERAL_END.search(line)
        if match:
            pos += int(match.group(1))
            rest = data.find(b"\r\n", pos)
            assert rest >= 0
            line += b" ..."
            pos = rest + 2
        lines.append(line)
    return lines


async def open_session(state: str) -> tuple[ImapSession, Wire]:
    backend = MemoryBackend()
    for n in range(1, 4):
        message = (
            f"From: a@example.org\r\nTo: b@example.org\r\nSubject: fuzz {n}\r\n"
            f"Message-ID: <fuzz-{n}@example.org>\r\n\r\nbody {n}\r\n"
        ).encode()
        await backend.append("INBOX", message, frozenset(), None)

    async def no_sleep(_: float) -> None:
        return None

    wire = Wire()
    session = ImapSession(
        MemoryAuthenticator({"user": ("secret", backend)}),
        send=wire.send,
        throttle=LoginThrottle(),
        sleep=no_sleep,
        max_literal=4096,
    )
    if state != "not-authenticated":
        await session.feed(b"s1 LOGIN user secret\r\n")
    if state == "selected":
        await session.feed(b"s2 SELECT INBOX\r\n")
    wire.take()
    return session, wire


async def feed(session: ImapSession, data: bytes) -> None:
    await asyncio.wait_for(session.feed(data), FEED_TIMEOUT)


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- property 1
VERBS = [
    "CAPABILITY", "NOOP", "LOGIN", "AUTHENTICATE PLAIN", "SELECT", "EXAMINE", "CREATE",
    "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE", "LIST", "LSUB", "STATUS", "APPEND",
    "CHECK", "CLOSE", "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY", "MOVE", "UID FETCH",
    "UID SEARCH", "UID STORE", "UID COPY", "UID MOVE", "UID EXPUNGE", "NAMESPACE", "ID",
    "ENABLE", "UNSELECT", "GETQUOTAROOT", "IDLE",
]  # fmt: skip
ARGS = [
    "1", "1:*", "*", "2,1:3", "0", "4294967296", "INBOX", '"INBOX"', "\"a\\\"b\"", "&ZeVnLIqe-",
    "()", "(FLAGS)", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])", "BODY[1.2.MIME]<0.10>",
    "(UID RFC822.SIZE ENVELOPE BODYSTRUCTURE)", "+FLAGS", "-FLAGS.SILENT", "(\\Seen \\Deleted)",
    "ALL", "OR SEEN NOT DELETED", "HEADER Subject fuzz", "SINCE 1-Jan-2020", "CHARSET UTF-8",
    "{3+}\r\nabc", "NIL", "(\"name\" \"fuzz\")", "RETURN (CHILDREN)", "(MESSAGES UNSEEN)",
    "CONDSTORE", "(CHANGEDSINCE 1)", "\x00", "\xff", "(((", ")", "[", "]", "<1.2>", "\"",
    "\\", "user secret", "Trash", "\"\"",
]  # fmt: skip


@st.composite
def command_line(draw: st.DrawFn) -> bytes:
    """A command-shaped line: tag, verb, arguments — each possibly mutated."""
    parts = [draw(TAG), draw(st.sampled_from(VERBS))]
    parts += draw(st.lists(st.sampled_from(ARGS), max_size=4))
    line = " ".join(parts).encode("latin-1")
    mutation = draw(st.sampled_from(["none", "insert", "delete", "truncate", "case"]))
    if mutation != "none" and line:
        at = draw(st.integers(0, len(line) - 1))
        if mutation == "insert":
            line = line[:at] + draw(st.binary(min_size=1, max_size=3)) + line[at:]
        elif mutation == "delete":
            line = line[:at] + line[at + 1 :]
        elif mutation == "truncate":
            line = line[: max(1, at)]
        else:
            line = line.lower()
    return line.replace(b"\r", b"").replace(b"\n", b"") + b"\r\n"


def _leaves_state_open(data: bytes) -> bool:
    """Input after which the session legitimately waits (for literal bytes, a SASL
    answer or DONE) or has ended: the NOOP probe would be swallowed or refused."""
    upper = data.upper()
    return any(word in upper for word in (b"{", b"IDLE", b"AUTHENTICATE", b"LOGOUT"))


@settings(
    max_examples=1500,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    state=st.sampled_from(STATES),
    lines=st.lists(
        st.one_of(command_line(), st.binary(max_size=40).map(lambda b: b + b"\r\n")),
        min_size=1,
        max_size=8,
    ),
    step=st.integers(1, 64),
)
def test_random_lines_never_break_a_session(state: str, lines: list[bytes], step: int) -> None:
    async def scenario() -> None:
        session, wire = await open_session(state)
        data = b"".join(lines)
        for i in range(0, len(data), step):
            if session.closed:
                break
            await feed(session, data[i : i + step])
        for line in response_lines(wire.take()):
            assert _RESPONSE.match(line), f"not an IMAP response line: {line!r}"
        if session.closed or _leaves_state_open(data):
            return
        await feed(session, b"zz9 NOOP\r\n")
        tagged = [ln for ln in response_lines(wire.take()) if ln.startswith(b"zz9 ")]
        assert len(tagged) == 1 and tagged[0].startswith(b"zz9 OK"), tagged

    run(scenario())


# ---------------------------------------------------------------------------- property 2
UNKNOWN_VERB = st.from_regex(r"Q[A-Z]{2,8}[0-9]", fullmatch=True)
NEEDS_ARGUMENT = ["SELECT", "EXAMINE", "CREATE", "DELETE", "LOGIN", "FETCH 1", "STORE 1",
                  "COPY 1", "UID FETCH 1", "RENAME INBOX", "STATUS INBOX", "SEARCH"]  # fmt: skip


BAD_ITEMS = [
    "FETCH 1 (NOSUCHITEM)",
    "FETCH 1 BODY[9X]",
    "STORE 1 NOSUCHOP (\\Seen)",
    "SEARCH NOSUCHKEY",
    "STATUS INBOX (NOSUCHITEM)",
    "FETCH 1 BODY[]<5>",
]


@st.composite
def malformed(draw: st.DrawFn) -> tuple[str | None, bytes]:
    """(tag or None, line) for a line no IMAP grammar accepts."""
    tag = draw(TAG)
    kind = draw(st.integers(0, 6))
    if kind == 0:
        body = draw(UNKNOWN_VERB) + draw(st.sampled_from(["", " 1", " (FLAGS)", " INBOX"]))
    elif kind == 1:
        body = draw(st.sampled_from(NEEDS_ARGUMENT))
    elif kind == 2:
        body = draw(st.sampled_from(["FETCH 1 (FLAGS", "FETCH 1 (BODY[HEADER.FIELDS (A)]",
                                     "SEARCH (SEEN", "STORE 1 +FLAGS (\\Seen",
                                     "LIST \"\" (*"]))  # fmt: skip
    elif kind == 3:
        bad_set = draw(st.sampled_from(["a", "0:x", "1:", ":1", "1,,2", "-1", "1.5", "*:"]))
        body = draw(st.sampled_from(["FETCH {} FLAGS", "UID FETCH {} FLAGS", "COPY {} INBOX",
                                     "STORE {} +FLAGS (\\Seen)"])).format(bad_set)  # fmt: skip
    elif kind == 4:
        body = draw(st.sampled_from(['LOGIN "user secret', 'SELECT "INBOX', 'CREATE "a\\']))
    elif kind == 5:
        body = draw(st.sampled_from(BAD_ITEMS))
    else:
        # No tag at all: the line starts with a character a tag cannot hold.
        return None, draw(st.sampled_from([b" NOOP", b"(", b"{ x", b"* NOOP", b'" x'])) + b"\r\n"
    return tag, f"{tag} {body}\r\n".encode()


@settings(max_examples=1000, deadline=None, derandomize=True)
@given(state=st.sampled_from(STATES), case=malformed())
def test_every_malformed_command_gets_bad(state: str, case: tuple[str | None, bytes]) -> None:
    tag, line = case

    async def scenario() -> None:
        session, wire = await open_session(state)
        await feed(session, line)
        answer = response_lines(wire.take())
        expected = b"* BAD " if tag is None else f"{tag} BAD ".encode()
        completions = [a for a in answer if not a.startswith(b"* ") or a.startswith(b"* BAD")]
        assert len(completions) == 1 and completions[0].startswith(expected), (line, answer)
        assert not session.closed, "a malformed line closed the session"
        await feed(session, b"zz9 NOOP\r\n")
        probe = [a for a in response_lines(wire.take()) if a.startswith(b"zz9 ")]
        assert probe and probe[0].startswith(b"zz9 OK"), probe

    run(scenario())
