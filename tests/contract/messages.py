"""Small RFC 5322 messages for the contract suite."""

from __future__ import annotations


def message(n: int = 1, *, subject: str | None = None, body: str = "Hello.") -> bytes:
    subject = subject if subject is not None else f"Message {n}"
    return (
        f"From: Alice <alice@example.test>\r\n"
        f"To: Bob <bob@example.test>\r\n"
        f"Subject: {subject}\r\n"
        f"Date: Mon, 2 Nov 2026 10:0{n % 10}:00 +0000\r\n"
        f"Message-ID: <m{n}@example.test>\r\n"
        f"MIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n"
        f"\r\n"
        f"{body}\r\n"
    ).encode()
