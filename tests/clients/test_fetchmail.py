"""fetchmail retrieving all mail over IMAP through the bridge, each message handed to an
MDA that writes it to a file.

fetchmail prepends its own ``Received:`` trace header and hands the MDA LF line ends;
with ``no rewrite`` it changes nothing else, so the rest of every file must be exactly the
BODY[] the bridge serves.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from tests.e2e.conftest import RunningBridge

from .helpers import PASSWORD, bridge_bodies, lf, message_id, run_client, seed_corpus


def _setup(tmp: Path, port: int) -> tuple[Path, Path]:
    out = tmp / "delivered"
    out.mkdir()
    mda = tmp / "mda.sh"
    mda.write_text(f'#!/bin/sh\nf=$(mktemp "{out}/msg.XXXXXX")\nexec cat > "$f"\n')
    mda.chmod(0o755)
    rc = tmp / "fetchmailrc"
    rc.write_text(
        f"""set no bouncemail
set no syslog
poll 127.0.0.1 service {port} protocol IMAP auth password
  user "alice" password "{PASSWORD}" is "alice" here
  folder "INBOX"
  keep fetchall no rewrite
  sslproto ""
  mda "{mda}"
"""
    )
    rc.chmod(0o600)  # fetchmail refuses a run control file others can read
    return rc, out


# fetchmail's trace header: "Received: from ... by ... with IMAP4 (fetchmail-6.x)"
# folded over several lines, always first.
_TRACE = re.compile(rb"\AReceived: from [^\n]*\n(?:[ \t][^\n]*\n)*")


async def test_fetchmail_retrieves_everything(
    running_bridge: RunningBridge, tmp_path: Path
) -> None:
    bridge = running_bridge
    alice = bridge.tenant.alice.id
    seeded = seed_corpus(bridge, alice, ["inbox"], count=16, seed=5, read_every=2)
    await bridge.sync_now("alice")
    rc, out = _setup(tmp_path, bridge.imap_port)
    home = tmp_path / "home"
    home.mkdir()

    await run_client(
        "fetchmail",
        "-f",
        str(rc),
        "--nodetach",
        "--pidfile",
        str(tmp_path / "fetchmail.pid"),
        "-i",
        str(tmp_path / "fetchids"),
        env={"HOME": str(home), "FETCHMAILUSER": "alice"},
        timeout=90,
    )

    served = await asyncio.to_thread(bridge_bodies, bridge.imap_port, "alice", "INBOX")
    files = sorted(out.iterdir())
    assert len(files) == len(served) == len(seeded["inbox"]) > 10
    got: dict[str, bytes] = {}
    for path in files:
        data = path.read_bytes()
        trace = _TRACE.match(data)
        assert trace is not None and b"fetchmail" in trace.group(0), data[:300]
        got[message_id(data)] = data[trace.end() :]
    expected = {message_id(b): lf(b) for b in served.values()}
    assert got.keys() == expected.keys()
    for mid, data in got.items():
        assert data == expected[mid], mid
    # "keep": nothing was deleted from the mailbox; fetching read everything.
    messages = bridge.sim.messages(alice, "inbox")
    assert len(messages) == len(seeded["inbox"])
    assert all(m["isRead"] for m in messages)
