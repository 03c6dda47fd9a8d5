"""The seam between protocols and mail storage.

``protocol`` (MailBackend, Authenticator) faces the IMAP session and SMTP; ``remote``
(Remote) faces Graph; ``events`` carries committed changes to sessions; ``memory`` is the
in-memory reference backend; ``cached`` is the SQLite-backed one over a Remote.
May import: store, mime, and the standard library. Never graph.
"""
