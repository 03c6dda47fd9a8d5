"""The conformance scenarios over ``ImapSession`` and the in-memory reference backend."""

from __future__ import annotations

import pytest

from bridge.backend.memory import MemoryAuthenticator, MemoryBackend
from tests.conformance.scenarios import SCENARIOS, Harness
from tests.conformance.wire_client import SessionTranscript, Transcript
from tests.session.transcript import Client

PASSWORD = "correct horse battery staple"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_scenario_on_memory_backend(name: str) -> None:
    authenticator = MemoryAuthenticator({"alice": (PASSWORD, MemoryBackend())})
    opened: list[Transcript] = []

    async def connect() -> Transcript:
        transcript = SessionTranscript(Client(authenticator))
        opened.append(transcript)
        return transcript

    try:
        await SCENARIOS[name](Harness(connect, "alice", PASSWORD))
    finally:
        for transcript in opened:
            await transcript.close()
