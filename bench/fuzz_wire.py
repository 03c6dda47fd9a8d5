"""Long fuzz run of the sans-I/O IMAP wire layer (``bridge.imap.wire``), issue 8.

``tests/wire/test_fuzz.py`` is the bounded run CI does (300 hypothesis examples). This is
the long one: coverage-guided with atheris (libFuzzer) when it is installed, otherwise
hypothesis with as many examples as fit in the time budget. Properties checked for every
input (the same as the CI test, plus the mailbox-name codec):

1. ``ServerConnection`` fed the input in chunks (chunk size from the first byte) never
   raises, always comes back to ``NEED_DATA`` within 10,000 events per chunk, every
   ``ProtocolError`` response is exactly one CRLF-terminated line, and after the junk a
   recovery sequence (end any literal, any line, then ``r1 NOOP``) gets a ``Noop`` through
   unless the connection closed itself;
2. ``decode_mailbox`` either raises ``ValueError`` or returns a name that
   ``encode_mailbox`` → ``decode_mailbox`` gives back unchanged.

    python bench/fuzz_wire.py --seconds 60                  # a minute, whichever engine
    python bench/fuzz_wire.py --seconds 3600                # the documented hour-long run
    python bench/fuzz_wire.py --engine hypothesis --seconds 600
    pip install atheris                                     # to get the atheris engine

With atheris the fuzzer runs in a child process (libFuzzer exits the process on a crash);
a crashing input is written to ``--artifacts`` and its path printed; exit status 1.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import machine_lines, print_table

# Tokens that reach deep into the grammar; the atheris dictionary and the hypothesis
# alphabet both start from these.
TOKENS = [
    b"a1 ",
    b"UID ",
    b"FETCH ",
    b"SEARCH ",
    b"LOGIN ",
    b"APPEND ",
    b"SELECT ",
    b"STORE ",
    b"COPY ",
    b"MOVE ",
    b"LIST ",
    b"STATUS ",
    b"ENABLE ",
    b"ID ",
    b"EXAMINE ",
    b"RENAME ",
    b"{3}\r\n",
    b"{2+}\r\n",
    b"{0}\r\n",
    b"~{1}\r\n",
    b"(",
    b")",
    b'"',
    b"\\",
    b"[",
    b"]",
    b"<1.2>",
    b"1:*",
    b"*:4,7",
    b"BODY.PEEK[HEADER.FIELDS (A)]",
    b"BODY[1.2.MIME]",
    b"BINARY[1]",
    b"NOT OR ",
    b"CHARSET UTF-8 ",
    b"HEADER X-A ",
    b"SINCE 1-Feb-2024 ",
    b"(CHANGEDSINCE 5 VANISHED)",
    b"RETURN (MIN MAX COUNT)",
    b"+FLAGS.SILENT (\\Seen)",
    b"(UNCHANGEDSINCE 3)",
    b"(QRESYNC (1 2 1:5))",
    b"\r\n",
    b"\n",
    b"\x00",
    b"\xff",
    b" ",
    b"*",
    b"&ZeVnLIqe-",
    b"&-",
    b"NIL",
    b"DONE\r\n",
    b"a2 IDLE\r\n",
    b"a3 AUTHENTICATE PLAIN\r\n",
    b"dGVzdAB0ZXN0AHRlc3Q=\r\n",
]

MAX_EVENTS = 10_000
#: Above this, an announced literal may legitimately still be swallowing octets when the
#: input ends (RFC 7888: a non-synchronising literal is read even when refused), so the
#: recovery check is skipped rather than fed that many bytes.
MAX_RECOVERY_LITERAL = 64 * 1024
_LITERAL = re.compile(rb"\{(\d{1,12})\+?\}")


def recovery(data: bytes) -> bytes | None:
    """Bytes that end whatever literal and line ``data`` left open, then a NOOP."""
    largest = max((int(m) for m in _LITERAL.findall(data)), default=0)
    if largest > MAX_RECOVERY_LITERAL:
        return None
    return b"\r\n" * 2 + b"x" * (largest + 5) + b"\r\n" * 2 + b"r1 NOOP\r\n"


def one_input(data: bytes) -> None:
    """Check both properties for ``data``; raise AssertionError on a violation."""
    from bridge.imap.wire import (
        NEED_DATA,
        Authenticate,
        ContinuationNeeded,
        Idle,
        Noop,
        ProtocolError,
        ServerConnection,
    )
    from bridge.imap.wire.utf7 import decode_mailbox, encode_mailbox

    def drive(conn: ServerConnection, chunks: list[bytes]) -> list[object]:
        events: list[object] = []
        for chunk in chunks:
            conn.receive_data(chunk)
            for _ in range(MAX_EVENTS):
                event = conn.next_event()
                if event is NEED_DATA:
                    break
                events.append(event)
                if isinstance(event, ContinuationNeeded):
                    conn.accept_literal()
                elif isinstance(event, Idle):
                    conn.enter_idle()
                elif isinstance(event, Authenticate):
                    conn.expect_continuation_line()
            else:
                raise AssertionError("next_event never returned NEED_DATA")
        return events

    if not data:
        return
    step = 1 + data[0] % 16
    body = data[1:]
    conn = ServerConnection(max_line=80, max_command_literal=40, max_nesting=8)
    for event in drive(conn, [body[i : i + step] for i in range(0, len(body), step)]):
        if isinstance(event, ProtocolError):
            assert event.response.endswith(b"\r\n"), event.response
            assert event.response.count(b"\r\n") == 1, event.response
    tail_bytes = recovery(body)
    if conn.state != "closed" and tail_bytes is not None:
        tail = drive(conn, [tail_bytes])
        assert Noop("r1") in tail or conn.state == "closed", (body, tail)

    try:
        name = decode_mailbox(body)
    except ValueError:
        return
    assert decode_mailbox(encode_mailbox(name)) == name, (body, name)


# -- atheris --------------------------------------------------------------------------------
def atheris_child(libfuzzer_args: list[str]) -> None:
    import atheris

    with atheris.instrument_imports():
        import bridge.imap.wire
        import bridge.imap.wire.utf7  # noqa: F401
    atheris.Setup([sys.argv[0], *libfuzzer_args], one_input)
    atheris.Fuzz()


def run_atheris(seconds: int, artifacts: Path, workers: int) -> tuple[list[object], int]:
    work = Path(tempfile.mkdtemp(prefix="fuzz-wire-", dir="/tmp"))
    corpus = work / "corpus"
    corpus.mkdir()
    for i, token in enumerate(TOKENS):
        (corpus / f"seed{i}").write_bytes(b"\x03" + token)
    (corpus / "session").write_bytes(
        b"\x05a1 LOGIN u p\r\na2 SELECT INBOX\r\na3 UID FETCH 1:* (FLAGS BODY.PEEK[])\r\n"
        b"a4 APPEND INBOX (\\Seen) {5+}\r\nhello\r\na5 IDLE\r\nDONE\r\na6 LOGOUT\r\n"
    )
    dictionary = work / "imap.dict"
    dictionary.write_text(
        "".join('"' + "".join(f"\\x{b:02x}" for b in token) + '"\n' for token in TOKENS)
    )
    artifacts.mkdir(parents=True, exist_ok=True)
    args = [
        f"-max_total_time={seconds}",
        "-timeout=10",  # one input taking 10 s is a hang
        "-rss_limit_mb=2048",
        f"-dict={dictionary}",
        f"-artifact_prefix={artifacts}/",
        "-print_final_stats=1",
    ]
    if workers > 1:
        args += [f"-workers={workers}", f"-jobs={workers}"]
    args.append(str(corpus))
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, __file__, "--atheris-child", *args],
        capture_output=True,
        text=True,
        timeout=seconds + 300,
        check=False,
    )
    elapsed = time.monotonic() - started
    log = proc.stderr + proc.stdout
    runs = [int(n) for n, _ in re.findall(r"Done (\d+) runs in (\d+) second", log)]
    if not runs:  # stopped by a crash: the last status line has the count
        runs = [int(n) for n in re.findall(r"^#(\d+)\s", log, re.M)[-1:]]
    cov = re.findall(r"cov: (\d+) ft: (\d+)", log)
    row: list[object] = [
        "atheris (libFuzzer)",
        f"{elapsed:.0f} s",
        sum(runs) if runs else "?",
        f"{sum(runs) / elapsed:.0f}" if runs else "?",
        f"cov {cov[-1][0]}, ft {cov[-1][1]}" if cov else "?",
        "none" if proc.returncode == 0 else "FOUND",
    ]
    if proc.returncode != 0:
        print(log[-4000:], file=sys.stderr)
        crashes = sorted(artifacts.glob("*"))
        print(f"crashing inputs: {[str(c) for c in crashes]}", file=sys.stderr)
    return row, proc.returncode


# -- hypothesis -------------------------------------------------------------------------------
def run_hypothesis(seconds: int) -> tuple[list[object], int]:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    count = 0

    @settings(
        max_examples=2_000,
        deadline=10_000,  # ms: one input taking 10 s is a hang
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        st.integers(0, 255),
        st.lists(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=16)), max_size=60),
    )
    def check(first: int, pieces: list[bytes]) -> None:
        nonlocal count
        count += 1
        one_input(bytes([first]) + b"".join(pieces))

    started = time.monotonic()
    rounds = 0
    status = 0
    while time.monotonic() - started < seconds:
        rounds += 1
        try:
            check()  # each round is a fresh random run of up to 2,000 examples
        except Exception as exc:
            print(f"property violated: {type(exc).__name__}: {exc}", file=sys.stderr)
            status = 1
            break
    elapsed = time.monotonic() - started
    return [
        "hypothesis",
        f"{elapsed:.0f} s",
        count,
        f"{count / elapsed:.0f}",
        f"{rounds} rounds x ≤2,000 examples",
        "none" if status == 0 else "FOUND",
    ], status


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--atheris-child":
        atheris_child(sys.argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seconds", type=int, default=60, help="time budget (3600 for the long run)"
    )
    parser.add_argument("--engine", choices=("auto", "atheris", "hypothesis"), default="auto")
    parser.add_argument("--workers", type=int, default=1, help="atheris: parallel fuzzers")
    parser.add_argument("--artifacts", default="/tmp/fuzz-wire-artifacts", help="atheris crash dir")
    parser.add_argument("--small", action="store_true", help="20 s")
    args = parser.parse_args()
    seconds = 20 if args.small else args.seconds
    engine = args.engine
    if engine == "auto":
        try:
            import atheris

            engine = "atheris"
        except ImportError:
            engine = "hypothesis"
    print("== IMAP wire parser fuzzing (issue 8) ==")
    for line in machine_lines():
        print(line)
    print(f"settings: engine={engine}, seconds={seconds}\n", flush=True)
    if engine == "atheris":
        try:
            import atheris  # noqa: F401
        except ImportError:
            print(
                "BENCHMARK FAILED: atheris is not installed (pip install atheris)", file=sys.stderr
            )
            return 2
        row, status = run_atheris(seconds, Path(args.artifacts).resolve(), args.workers)
    else:
        row, status = run_hypothesis(seconds)
    print_table(["engine", "time", "inputs", "per second", "coverage", "failures"], [row])
    return 1 if status else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
