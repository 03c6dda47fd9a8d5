"""IMAP4rev1 for the bridge, in three layers.

- ``wire``: sans-I/O parsing and serialising (bytes ↔ command and response values);
  standard library only.
- ``session``: the state machine and one handler module per command group in front of a
  ``MailBackend``; transport-agnostic (fed bytes, writes through an async callable).
- ``server``: the asyncio shell (sockets, TLS and STARTTLS, timeouts, limits, shutdown).

Nothing under ``bridge.imap`` knows about Graph, the store or sync: the backend seam
(``bridge.backend.protocol``) is all it sees of the mailbox.
"""
