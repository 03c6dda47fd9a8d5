"""MIME for IMAP: pure functions on message bytes.

Owns ENVELOPE, BODY/BODYSTRUCTURE, RFC822.SIZE and byte-exact BODY[section] extraction
(RFC 3501 §6.4.5, §7.4.2), plus decoded text for SEARCH. Everything works on the bytes
exactly as stored; nothing is re-serialised, nothing raises on malformed mail.

Modules:

* ``structure`` — the scanner (byte offsets of every part; read its theory of operation)
* ``headers``   — header fields as byte spans; Content-Type & co. value grammars
* ``envelopes`` — ENVELOPE and the RFC 5322 address parser
* ``bodystructure`` — BODY / BODYSTRUCTURE values
* ``sections``  — BODY[section] and partial fetches
* ``summary``   — ``MessageSummary`` (cached per message by the backend, JSON-able)
* ``text``      — RFC 2047/2231 decoding, text for SEARCH, Date/Message-ID/addresses

Values handed to the IMAP serialiser are ``str`` (string), ``None`` (NIL), ``int``
(number) and tuples (parenthesised lists). Strings are Unicode: raw UTF-8 headers
(RFC 6532) stay as text, undecodable 8-bit bytes become U+FFFD, so every string
encodes as UTF-8; some need a literal rather than a quoted string (8-bit text, a
stray CR, NUL), which is the serialiser's choice.

Where RFC 3501 leaves room we do what Dovecot 2.3 does (tests/mime/test_dovecot.py
compares against a real one); the few deliberate differences are listed in
``bodystructure`` and ``sections``.

Must import only the standard library (ARCHITECTURE.md; tests/test_layering.py).
"""

from __future__ import annotations

from bridge.mime.bodystructure import BodyStructure, ImapValue, body_structure, body_structures
from bridge.mime.envelopes import Address, Envelope, envelope, parse_address_list
from bridge.mime.headers import HeaderField, MediaType
from bridge.mime.sections import SECTION_TEXTS, extract_section, partial
from bridge.mime.structure import MessagePart, PartKind, find_part, parse_structure
from bridge.mime.summary import MessageSummary, summarize
from bridge.mime.text import (
    addresses,
    contains_ci,
    decode_body,
    decode_transfer,
    decode_words,
    header_values,
    message_id,
    searchable_text,
    sent_date,
)

__all__ = [
    "SECTION_TEXTS",
    "Address",
    "BodyStructure",
    "Envelope",
    "HeaderField",
    "ImapValue",
    "MediaType",
    "MessagePart",
    "MessageSummary",
    "PartKind",
    "addresses",
    "body_structure",
    "body_structures",
    "contains_ci",
    "decode_body",
    "decode_transfer",
    "decode_words",
    "envelope",
    "extract_section",
    "find_part",
    "header_values",
    "message_id",
    "parse_address_list",
    "parse_structure",
    "partial",
    "searchable_text",
    "sent_date",
    "summarize",
]
