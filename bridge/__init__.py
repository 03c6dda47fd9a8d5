"""graph-mail-bridge: IMAP4rev1 and SMTP submission on localhost, backed by Microsoft Graph."""

__version__ = "0.1.0"
