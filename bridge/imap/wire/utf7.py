"""Modified UTF-7 for mailbox names (RFC 3501 §5.1.3).

Owns :func:`encode_mailbox` / :func:`decode_mailbox`.  Standard library only.

Theory of operation: printable US-ASCII (0x20-0x7e) stands for itself, except ``&`` which
is written ``&-``.  Every other run of characters is UTF-16BE, base64-encoded with ``,``
instead of ``/`` and no padding, between ``&`` and ``-``.  Decoding is STRICT: after
decoding we re-encode and require the exact input back, which rejects every
non-canonical form the RFC forbids in one check — "modified BASE64 MUST NOT be used to
represent any printing US-ASCII character which can represent itself", adjacent shifted
runs, non-zero padding bits, unpaired surrogates.  Errors raise :class:`Utf7Error`,
which the parser turns into a tagged BAD.
"""

from __future__ import annotations

import base64
import binascii

__all__ = ["Utf7Error", "decode_mailbox", "encode_mailbox"]


class Utf7Error(ValueError):
    """The bytes are not a canonical modified UTF-7 mailbox name."""


def _b64(run: str) -> str:
    raw = run.encode("utf-16-be")
    return base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ",")


def encode_mailbox(name: str) -> str:
    """Unicode mailbox name → modified UTF-7 (raises ``Utf7Error`` on lone surrogates)."""
    if name.isascii() and "&" not in name and name.isprintable():
        return name  # the common case: nothing to do
    out: list[str] = []
    run: list[str] = []
    for ch in name:
        if "\x20" <= ch <= "\x7e":
            if run:
                out.append("&" + _encode_run("".join(run)) + "-")
                run.clear()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    if run:
        out.append("&" + _encode_run("".join(run)) + "-")
    return "".join(out)


def _encode_run(run: str) -> str:
    try:
        return _b64(run)
    except UnicodeEncodeError as exc:
        raise Utf7Error("unpaired surrogate in mailbox name") from exc


_B64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,")


def decode_mailbox(data: str | bytes) -> str:
    """Modified UTF-7 → Unicode; raises :class:`Utf7Error` on anything non-canonical."""
    if isinstance(data, bytes):
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError as exc:
            # RFC 3501 §5.1.3 names are 7-bit; 8-bit needs UTF8=ACCEPT, not offered.
            raise Utf7Error("8-bit octet in mailbox name") from exc
    else:
        text = data
    if "&" not in text:
        if not text.isascii() or not all("\x20" <= c <= "\x7e" for c in text):
            raise Utf7Error("mailbox name contains a character that must be encoded")
        return text
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "&":
            if not "\x20" <= ch <= "\x7e":
                raise Utf7Error("mailbox name contains a character that must be encoded")
            out.append(ch)
            i += 1
            continue
        end = text.find("-", i + 1)
        if end < 0:
            raise Utf7Error("unterminated '&' sequence in mailbox name")
        chunk = text[i + 1 : end]
        i = end + 1
        if not chunk:
            out.append("&")
            continue
        if any(c not in _B64_CHARS for c in chunk) or len(chunk) % 4 == 1:
            raise Utf7Error("bad modified-base64 in mailbox name")
        padded = chunk.replace(",", "/") + "=" * (-len(chunk) % 4)
        try:
            raw = base64.b64decode(padded, validate=True)
            out.append(raw.decode("utf-16-be"))
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise Utf7Error("bad UTF-16 in mailbox name") from exc
    result = "".join(out)
    try:
        canonical = encode_mailbox(result)
    except Utf7Error:
        raise
    if canonical != text:
        raise Utf7Error("non-canonical modified UTF-7 in mailbox name")
    return result
