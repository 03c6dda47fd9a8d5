# ruff: noqa: RUF001  (names and subjects are deliberately non-ASCII test data)
"""A deterministic corpus of realistic RFC 5322 / MIME messages for tests and benchmarks.

No external data: everything comes from a seeded ``random.Random``, so the same
``(count, seed)`` always gives the same bytes. Messages use CRLF line endings.

    build_corpus(count, seed=1, large_every=None) -> list[bytes]
    corpus_message(kind, seed=1) -> bytes           # one message of a named kind
    KINDS                                           # the kind names

Kinds cover: plain text, multipart/alternative, multipart/mixed with binary
attachments (PDF-like, PNG, zip), multipart/related with cid: images, forwarded
message/rfc822 (itself multipart), RFC 2047 subjects and display names (UTF-8 and
ISO-8859-1, B and Q), RFC 2231 filenames (continuations, charset), 8-bit UTF-8 bodies
without a transfer encoding, ~500-character lines, group address syntax, threads
(Message-ID / In-Reply-To / References), and a few malformed ones (missing close
delimiter, garbage Content-Type, multipart without boundary, unterminated header).
``large_every=n`` makes every n-th message a large one (~150-200 KB).
"""

from __future__ import annotations

import base64
import quopri
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

__all__ = ["KINDS", "build_corpus", "corpus_message"]

CRLF = "\r\n"

_WORD_TEXT = (
    "invoice meeting project budget review quarterly report deadline schedule update "
    "customer contract proposal draft final approval team sales marketing design "
    "server backup migration release notes agenda minutes follow-up reminder travel "
    "expense policy security incident ticket support order shipment delivery payment "
    "the a of to and in for on with as at by from is are was be this that it we you"
)
_WORDS = _WORD_TEXT.split()
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_PEOPLE = (
    ("Alice Martin", "alice.martin@contoso.example"),
    ("Bob O'Neil", "bob.oneil@fabrikam.example"),
    ("Jörg Müller", "joerg.mueller@example.de"),
    ("Zoë Dubois", "zoe.dubois@example.fr"),
    ("田中 太郎", "tanaka@example.jp"),
    ("José García", "jose.garcia@example.es"),
    ("Support Team", "support@contoso.example"),
    ("Chen, Wei", "wei.chen@example.cn"),
    ("", "noreply@notifications.example"),
    ("Ünal Yılmaz", "unal@example.com.tr"),
)
_UNICODE_SUBJECTS = (
    "Größenänderung der Präsentation",
    "Café réunion à 15h — ordre du jour",
    "会議の議事録",
    "Presupuesto año 2025: revisión",
    "Re: Ürün fiyatları",
    "Résumé of Zoë's trip ✈",
)
_LATIN1_SUBJECTS = ("Café crème", "Ärger mit der Bestellung", "Señal débil", "Größe")
_ZONES = (0, 60, 120, -300, -420, 330, 540, -180)


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n))


def _paragraphs(rng: random.Random, count: int, width: int = 72) -> list[str]:
    """Lines of text wrapped at ``width``, paragraphs separated by empty lines."""
    lines: list[str] = []
    for _ in range(count):
        text = _words(rng, rng.randint(20, 80)).capitalize() + "."
        line = ""
        for word in text.split():
            if line and len(line) + 1 + len(word) > width:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        lines.append(line)
        lines.append("")
    return lines


def _b64_lines(data: bytes) -> list[str]:
    encoded = base64.b64encode(data).decode("ascii")
    return [encoded[i : i + 76] for i in range(0, len(encoded), 76)]


def _encode_word(text: str, rng: random.Random) -> str:
    """RFC 2047 encoded word(s): UTF-8 or ISO-8859-1, B or Q, chosen by ``rng``."""
    charset = "ISO-8859-1" if rng.random() < 0.3 else "UTF-8"
    try:
        raw = text.encode(charset)
    except UnicodeEncodeError:
        charset, raw = "UTF-8", text.encode("utf-8")
    if rng.random() < 0.5:
        return f"=?{charset}?B?{base64.b64encode(raw).decode('ascii')}?="
    encoded = "".join(
        "_" if b == 0x20 else (chr(b) if chr(b).isalnum() and b < 0x80 else f"={b:02X}")
        for b in raw
    )
    return f"=?{charset}?Q?{encoded}?="


def _mailbox(rng: random.Random, person: tuple[str, str]) -> str:
    name, addr = person
    if not name:
        return addr
    if not name.isascii():
        return f"{_encode_word(name, rng)} <{addr}>"
    if any(ch in name for ch in ",.'"):
        return f'"{name}" <{addr}>'
    return f"{name} <{addr}>"


def _date(rng: random.Random, index: int) -> str:
    zone = rng.choice(_ZONES)
    base = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(
        hours=index * 7 + rng.randint(0, 6), minutes=rng.randint(0, 59), seconds=rng.randint(0, 59)
    )
    local = base.astimezone(timezone(timedelta(minutes=zone)))
    sign = "+" if zone >= 0 else "-"
    tz = f"{sign}{abs(zone) // 60:02d}{abs(zone) % 60:02d}"
    weekday = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[local.weekday()]
    month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][
        local.month - 1
    ]
    day = str(local.day) if rng.random() < 0.5 else f"{local.day:02d}"
    return f"{weekday}, {day} {month} {local.year} {local:%H:%M:%S} {tz}"


class _Context:
    """Per-corpus state: message ids already issued, for threading."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.subjects: dict[str, str] = {}
        self.references: dict[str, list[str]] = {}


def _fold(name: str, value: str) -> str:
    """A header field, folded at spaces to keep lines under ~78 characters."""
    line = f"{name}: "
    out: list[str] = []
    for token in value.split(" "):
        if len(line) + len(token) > 76 and line.strip() and not line.endswith(": "):
            out.append(line.rstrip(" "))
            line = " " + token + " "
        else:
            line += token + " "
    out.append(line.rstrip(" "))
    return CRLF.join(out)


def _headers(
    rng: random.Random,
    index: int,
    ctx: _Context,
    subject: str | None = None,
    groups: bool = False,
) -> list[str]:
    sender = rng.choice(_PEOPLE)
    others = [p for p in _PEOPLE if p != sender]
    to = rng.sample(others, rng.randint(1, 3))
    msgid = f"<{index}.{rng.getrandbits(48):012x}@{sender[1].split('@')[1]}>"
    lines = [f"From: {_mailbox(rng, sender)}"]
    if groups:
        members = ", ".join(_mailbox(rng, p) for p in to)
        lines.append(_fold("To", f"Project Team: {members};, undisclosed-recipients:;"))
    else:
        lines.append(_fold("To", ", ".join(_mailbox(rng, p) for p in to)))
    if rng.random() < 0.4:
        lines.append(_fold("Cc", ", ".join(_mailbox(rng, p) for p in rng.sample(others, 2))))
    if rng.random() < 0.1:
        lines.append(f"Reply-To: {_mailbox(rng, rng.choice(others))}")
    parent = rng.choice(ctx.ids) if ctx.ids and rng.random() < 0.35 else None
    if subject is None:
        if parent is not None:
            subject = "Re: " + ctx.subjects[parent].removeprefix("Re: ")
        elif rng.random() < 0.3:
            text = rng.choice(_UNICODE_SUBJECTS + _LATIN1_SUBJECTS)
            subject = _encode_word(text, rng)
        else:
            subject = _words(rng, rng.randint(2, 9)).capitalize()
    lines.append(_fold("Subject", subject))
    lines.append(f"Date: {_date(rng, index)}")
    lines.append(f"Message-ID: {msgid}")
    if parent is not None:
        refs = [*ctx.references.get(parent, []), parent][-8:]
        lines.append(f"In-Reply-To: {parent}")
        lines.append(_fold("References", " ".join(refs)))
        ctx.references[msgid] = refs
    lines.append("MIME-Version: 1.0")
    ctx.ids.append(msgid)
    ctx.subjects[msgid] = subject
    return lines


def _boundary(rng: random.Random, level: int = 0) -> str:
    return f"----=_Part_{level}_{rng.getrandbits(40):010x}.{rng.randint(1000, 9999)}"


def _join(lines: list[str]) -> bytes:
    return (CRLF.join(lines) + CRLF).encode("utf-8")


def _text_part(rng: random.Random, paragraphs: int, qp: bool = False) -> list[str]:
    body = _paragraphs(rng, paragraphs)
    if qp:
        raw = CRLF.join(body).encode("utf-8")
        encoded = quopri.encodestring(raw.replace(b"\r\n", b"\n")).decode("ascii")
        return [
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: quoted-printable",
            "",
            *encoded.split("\n"),
        ]
    return [
        "Content-Type: text/plain; charset=us-ascii",
        "Content-Transfer-Encoding: 7bit",
        "",
        *body,
    ]


def _html_part(rng: random.Random, paragraphs: int, cids: tuple[str, ...] = ()) -> list[str]:
    body = ['<html><head><meta charset="utf-8"></head><body>']
    for line in _paragraphs(rng, paragraphs, width=200):
        if line:
            body.append(f"<p>{line}</p>")
    body.extend(f'<img src="cid:{cid}" alt="image">' for cid in cids)
    body.append("</body></html>")
    return ["Content-Type: text/html; charset=utf-8", "Content-Transfer-Encoding: 7bit", "", *body]


def _binary(rng: random.Random, size: int, kind: str) -> bytes:
    heads = {
        "pdf": b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
        "png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        "zip": b"PK\x03\x04\x14\x00\x00\x00",
        "jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    }
    return heads[kind] + rng.randbytes(max(0, size - len(heads[kind])))


_ATTACH_TYPES = {
    "pdf": "application/pdf",
    "png": "image/png",
    "zip": "application/zip",
    "jpg": "image/jpeg",
}


def _attachment(
    rng: random.Random, size: int, kind: str, filename: str, rfc2231: bool = False
) -> list[str]:
    if rfc2231:
        # RFC 2231 §3/§4: continuations with a charset on the first segment
        encoded = "".join(
            f"%{b:02X}" if not (chr(b).isalnum() or chr(b) in ".-") else chr(b)
            for b in filename.encode("utf-8")
        )
        half = len(encoded) // 2
        while "%" in encoded[max(0, half - 2) : half]:
            half += 1
        disposition = (
            f"Content-Disposition: attachment;{CRLF} filename*0*=utf-8''{encoded[:half]};"
            f"{CRLF} filename*1*={encoded[half:]}"
        )
        ctype = f"Content-Type: {_ATTACH_TYPES[kind]}; name*=utf-8''{encoded}"
    else:
        disposition = f'Content-Disposition: attachment; filename="{filename}"; size={size}'
        ctype = f'Content-Type: {_ATTACH_TYPES[kind]}; name="{filename}"'
    return [
        ctype,
        "Content-Transfer-Encoding: base64",
        disposition,
        "",
        *_b64_lines(_binary(rng, size, kind)),
    ]


def _multipart(subtype: str, boundary: str, parts: list[list[str]], extra: str = "") -> list[str]:
    lines = [f'Content-Type: multipart/{subtype};{CRLF} boundary="{boundary}"{extra}', ""]
    lines.append("This is a multi-part message in MIME format.")
    for part in parts:
        lines.append(f"--{boundary}")
        lines.extend(part)
    lines.append(f"--{boundary}--")
    return lines


# --- kinds -------------------------------------------------------------------------

Builder = Callable[[random.Random, int, _Context], bytes]


def _plain(rng: random.Random, index: int, ctx: _Context) -> bytes:
    lines = _headers(rng, index, ctx)
    lines += ["Content-Type: text/plain; charset=us-ascii; format=flowed"]
    lines += ["Content-Transfer-Encoding: 7bit", "", *_paragraphs(rng, rng.randint(4, 12))]
    return _join(lines)


def _no_mime(rng: random.Random, index: int, ctx: _Context) -> bytes:
    lines = [line for line in _headers(rng, index, ctx) if not line.startswith("MIME-")]
    return _join([*lines, "", *_paragraphs(rng, rng.randint(4, 8))])


def _alternative(rng: random.Random, index: int, ctx: _Context) -> bytes:
    n = rng.randint(2, 8)
    parts = [_text_part(rng, n, qp=rng.random() < 0.5), _html_part(rng, n)]
    return _join(_headers(rng, index, ctx) + _multipart("alternative", _boundary(rng), parts))


def _mixed(rng: random.Random, index: int, ctx: _Context) -> bytes:
    inner = _multipart(
        "alternative",
        _boundary(rng, 1),
        [_text_part(rng, 3), _html_part(rng, 3)],
    )
    parts = [inner]
    for i in range(rng.randint(1, 3)):
        kind = rng.choice(tuple(_ATTACH_TYPES))
        size = rng.randint(2_000, 40_000)
        parts.append(_attachment(rng, size, kind, f"document-{index}-{i}.{kind}"))
    return _join(_headers(rng, index, ctx) + _multipart("mixed", _boundary(rng), parts))


def _related(rng: random.Random, index: int, ctx: _Context) -> bytes:
    cids = [f"image{i}.{rng.getrandbits(32):08x}@contoso.example" for i in range(rng.randint(1, 3))]
    related_parts = [_html_part(rng, 3, tuple(cids))]
    for i, cid in enumerate(cids):
        related_parts.append(
            [
                f'Content-Type: image/png; name="image{i}.png"',
                "Content-Transfer-Encoding: base64",
                f"Content-ID: <{cid}>",
                f'Content-Disposition: inline; filename="image{i}.png"',
                "",
                *_b64_lines(_binary(rng, rng.randint(1_000, 8_000), "png")),
            ]
        )
    related = _multipart("related", _boundary(rng, 1), related_parts, '; type="text/html"')
    outer = _multipart("alternative", _boundary(rng), [_text_part(rng, 3), related])
    return _join(_headers(rng, index, ctx) + outer)


def _forward(rng: random.Random, index: int, ctx: _Context) -> bytes:
    inner_ctx = _Context()
    inner = _mixed(rng, index + 100_000, inner_ctx).decode("utf-8").split(CRLF)
    while inner and inner[-1] == "":
        inner.pop()
    parts = [
        _text_part(rng, 2),
        [
            "Content-Type: message/rfc822",
            'Content-Disposition: attachment; filename="fwd.eml"',
            "",
            *inner,
        ],
    ]
    headers = _headers(rng, index, ctx, subject="Fwd: " + _words(rng, 4))
    return _join(headers + _multipart("mixed", _boundary(rng), parts))


def _encoded_headers(rng: random.Random, index: int, ctx: _Context) -> bytes:
    subject = " ".join(_encode_word(s, rng) for s in rng.sample(_UNICODE_SUBJECTS, 2))
    lines = _headers(rng, index, ctx, subject=subject)
    lines += [
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: quoted-printable",
    ]
    text = "Grüße aus München — こんにちは\n" + "\n".join(_paragraphs(rng, 4))
    lines += ["", *quopri.encodestring(text.encode("utf-8")).decode("ascii").split("\n")]
    return _join(lines)


def _rfc2231(rng: random.Random, index: int, ctx: _Context) -> bytes:
    name = rng.choice(
        ("Résumé Zoë Dubois 2024.pdf", "Präsentation Größe – final.pdf", "報告書.pdf")
    )
    parts = [_text_part(rng, 2), _attachment(rng, rng.randint(3_000, 9_000), "pdf", name, True)]
    return _join(_headers(rng, index, ctx) + _multipart("mixed", _boundary(rng), parts))


def _utf8_8bit(rng: random.Random, index: int, ctx: _Context) -> bytes:
    lines = _headers(rng, index, ctx)
    lines += ["Content-Type: text/plain; charset=UTF-8", "Content-Transfer-Encoding: 8bit", ""]
    lines += ["Hallo Jörg, ça va? Привет! 你好 🙂", "", *_paragraphs(rng, 5)]
    return _join(lines)


def _long_lines(rng: random.Random, index: int, ctx: _Context) -> bytes:
    lines = _headers(rng, index, ctx)
    lines += ["Content-Type: text/plain; charset=us-ascii", ""]
    lines += [_words(rng, 90)[:500] for _ in range(rng.randint(3, 12))]
    return _join(lines)


def _groups(rng: random.Random, index: int, ctx: _Context) -> bytes:
    lines = _headers(rng, index, ctx, groups=True)
    lines += ["Content-Type: text/plain", "", *_paragraphs(rng, 4)]
    return _join(lines)


def _malformed_no_end(rng: random.Random, index: int, ctx: _Context) -> bytes:
    boundary = _boundary(rng)
    lines = _headers(rng, index, ctx)
    lines += [f'Content-Type: multipart/mixed; boundary="{boundary}"', "", f"--{boundary}"]
    lines += _text_part(rng, 2)
    lines += [f"--{boundary}", *_attachment(rng, 3_000, "zip", "a.zip")]  # no close delimiter
    return _join(lines)


def _malformed_bad_type(rng: random.Random, index: int, ctx: _Context) -> bytes:
    lines = _headers(rng, index, ctx)
    variant = rng.randint(0, 2)
    if variant == 0:
        lines += ["Content-Type: this is not a type", "", *_paragraphs(rng, 5)]
    elif variant == 1:
        lines += ["Content-Type: multipart/mixed", "", "--nothing", *_paragraphs(rng, 5)]
    else:
        lines += ['Content-Type: text/plain; charset="unterminated', "Bogus header line", ""]
        lines += _paragraphs(rng, 5)
    return _join(lines)


def _large(rng: random.Random, index: int, ctx: _Context) -> bytes:
    parts = [_text_part(rng, 5)]
    total = rng.randint(110_000, 145_000)  # base64 grows it to ~150-200 KB
    parts.append(_attachment(rng, total, rng.choice(("pdf", "zip")), f"large-{index}.bin"))
    return _join(_headers(rng, index, ctx) + _multipart("mixed", _boundary(rng), parts))


_BUILDERS: dict[str, Builder] = {
    "plain": _plain,
    "no_mime": _no_mime,
    "alternative": _alternative,
    "mixed": _mixed,
    "related": _related,
    "forward": _forward,
    "encoded_headers": _encoded_headers,
    "rfc2231": _rfc2231,
    "utf8_8bit": _utf8_8bit,
    "long_lines": _long_lines,
    "groups": _groups,
    "malformed_no_end": _malformed_no_end,
    "malformed_bad_type": _malformed_bad_type,
    "large": _large,
}
KINDS: tuple[str, ...] = tuple(_BUILDERS)

# How often each kind appears in build_corpus (plain and alternative dominate real mail)
_WEIGHTS = {
    "plain": 14,
    "no_mime": 2,
    "alternative": 14,
    "mixed": 8,
    "related": 4,
    "forward": 3,
    "encoded_headers": 5,
    "rfc2231": 3,
    "utf8_8bit": 4,
    "long_lines": 2,
    "groups": 2,
    "malformed_no_end": 1,
    "malformed_bad_type": 1,
}


def build_corpus(count: int, seed: int = 1, large_every: int | None = None) -> list[bytes]:
    """``count`` messages; every kind except ``large`` appears once the corpus has
    at least ``len(KINDS) - 1`` messages, the rest follow realistic weights."""
    rng = random.Random(seed)
    ctx = _Context()
    kinds = [k for k in KINDS if k != "large"]
    population = list(_WEIGHTS)
    weights = [_WEIGHTS[k] for k in population]
    messages: list[bytes] = []
    for index in range(count):
        if large_every and index % large_every == large_every - 1:
            kind = "large"
        elif index < len(kinds):
            kind = kinds[index]
        else:
            kind = rng.choices(population, weights)[0]
        messages.append(_BUILDERS[kind](random.Random(rng.getrandbits(64)), index, ctx))
    return messages


def corpus_message(kind: str, seed: int = 1) -> bytes:
    """One message of ``kind`` (see ``KINDS``), deterministic for a given seed."""
    if kind not in _BUILDERS:
        raise ValueError(f"unknown corpus kind {kind!r}; known: {', '.join(KINDS)}")
    return _BUILDERS[kind](random.Random(seed), seed, _Context())
