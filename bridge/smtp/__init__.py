"""SMTP submission (RFC 6409) on top of aiosmtpd, sending through Microsoft Graph.

Owns: the submission listeners (``server``), the per-message logic (``handler``: AUTH,
sender checks, envelope/header recipient reconciliation, Message-ID, the Graph send and
its reply), byte-level header edits (``headers``), failure replies (``replies``), AUTH
rate limiting (``authlimit``) and the record of sends with an unknown outcome
(``uncertain``). Accounts are reached only through ``accounts.SubmissionDirectory`` and
Graph only through ``bridge.backend.remote.Remote``.

Must not import ``bridge.graph``, ``bridge.store``, ``bridge.config`` or ``bridge.imap``.
"""

from __future__ import annotations

from bridge.smtp.accounts import SubmissionDirectory
from bridge.smtp.authlimit import AuthLimits
from bridge.smtp.handler import OnSent, SubmissionPolicy
from bridge.smtp.server import SubmissionServer
from bridge.smtp.uncertain import UncertainSend, UncertainSends

__all__ = [
    "AuthLimits",
    "OnSent",
    "SubmissionDirectory",
    "SubmissionPolicy",
    "SubmissionServer",
    "UncertainSend",
    "UncertainSends",
]
