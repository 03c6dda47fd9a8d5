"""The conformance scenarios over the whole bridge: IMAP server, session, CachedBackend
and sync against the Graph simulator over HTTPS, spoken to through a real socket."""

from __future__ import annotations

import pytest

from tests.conformance.scenarios import SCENARIOS, Harness
from tests.conformance.wire_client import SocketTranscript, Transcript
from tests.e2e.conftest import PASSWORD, RunningBridge


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_scenario_on_the_bridge(name: str, running_bridge: RunningBridge) -> None:
    opened: list[Transcript] = []

    async def connect() -> Transcript:
        transcript = await SocketTranscript.connect(running_bridge.imap_port)
        opened.append(transcript)
        return transcript

    try:
        await SCENARIOS[name](Harness(connect, "alice", PASSWORD))
    finally:
        for transcript in opened:
            await transcript.close()
