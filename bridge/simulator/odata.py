"""The OData query-option subset the simulated mail API understands.

Owns: parsing ``$select``, ``$top``, ``$skip``, ``$filter`` (the subset in §7.2/§16.1),
``$orderby`` (with the InefficientFilter rule, §7.2), ``$expand`` of extended properties
(§10.2), and ``Prefer`` headers (§0.2). Must not import anything from ``bridge`` outside
``bridge.simulator``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import GraphError, bad_request
from .model import ExtKey, Message, parse_ext_id, parse_iso


def parse_prefer(values: list[str]) -> dict[str, str]:
    """Repeated ``Prefer`` headers and comma-separated ones are equivalent (§0.2)."""
    out: dict[str, str] = {}
    for value in values:
        for item in re.findall(r'(?:[^,"]|"[^"]*")+', value):
            name, _, val = item.strip().partition("=")
            if name:
                out[name.strip().lower()] = val.strip().strip('"')
    return out


def parse_select(query: dict[str, str]) -> list[str] | None:
    raw = query.get("$select")
    if raw is None:
        return None
    return [s.strip() for s in raw.split(",") if s.strip()]


def parse_int(query: dict[str, str], name: str, *, lo: int, hi: int) -> int | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"Invalid value '{raw}' for query option {name}.") from None
    if value < lo or value > hi:
        raise bad_request(f"Invalid value '{raw}' for query option {name}.", "ErrorInvalidUrlQuery")
    return value


@dataclass(frozen=True, slots=True)
class Clause:
    prop: str  # lower-case property path
    op: str
    value: Any


_CLAUSE = re.compile(
    r"^\s*([A-Za-z/]+)\s+(eq|ne|ge|gt|le|lt)\s+('(?:[^']|'')*'|true|false|null|[0-9T:.\-+Z]+)\s*$",
    re.I,
)
FILTERABLE = {
    "isread",
    "isdraft",
    "receiveddatetime",
    "sentdatetime",
    "lastmodifieddatetime",
    "internetmessageid",
    "subject",
    "from/emailaddress/address",
    "flag/flagstatus",
    "importance",
    "hasattachments",
}
DATE_PROPS = {"receiveddatetime", "sentdatetime", "lastmodifieddatetime"}


def parse_filter(raw: str | None) -> list[Clause]:
    if not raw:
        return []
    clauses: list[Clause] = []
    for part in re.split(r"\s+and\s+", raw.strip(), flags=re.I):
        m = _CLAUSE.match(part.strip("() "))
        if not m:
            raise bad_request(
                f"Invalid filter clause: {part.strip()}", "ErrorInvalidUrlQueryFilter"
            )
        prop, op, lit = m.group(1).lower(), m.group(2).lower(), m.group(3)
        if prop not in FILTERABLE:
            raise bad_request(
                f"Could not find a property named '{m.group(1)}' on type "
                "'microsoft.graph.message'.",
                "RequestBroker--ParseUri",
            )
        value: Any
        if lit.startswith("'"):
            value = lit[1:-1].replace("''", "'")
        elif lit.lower() in ("true", "false"):
            value = lit.lower() == "true"
        elif lit.lower() == "null":
            value = None
        else:
            value = lit
        if prop in DATE_PROPS and value is not None:
            try:
                value = parse_iso(str(value))
            except ValueError:
                raise bad_request(f"Invalid date '{value}' in filter.") from None
        clauses.append(Clause(prop, op, value))
    return clauses


def _prop_value(m: Message, prop: str) -> Any:
    return {
        "isread": m.is_read,
        "isdraft": m.is_draft,
        "receiveddatetime": m.received,
        "sentdatetime": m.sent,
        "lastmodifieddatetime": m.modified,
        "internetmessageid": m.internet_message_id,
        "subject": m.subject,
        "from/emailaddress/address": ((m.from_ or {}).get("emailAddress") or {}).get("address", ""),
        "flag/flagstatus": m.flag.get("flagStatus", "notFlagged"),
        "importance": m.importance,
        "hasattachments": m.has_attachments,
    }[prop]


def matches(m: Message, clauses: list[Clause]) -> bool:
    for c in clauses:
        v = _prop_value(m, c.prop)
        want = c.value
        if isinstance(v, str) and isinstance(want, str):
            # Value comparisons on strings are case-insensitive in Exchange.
            v, want = v.lower(), want.lower()
        if c.op == "eq":
            ok = v == want
        elif c.op == "ne":
            ok = v != want
        elif v is None or want is None:
            ok = False
        elif c.op == "ge":
            ok = v >= want
        elif c.op == "gt":
            ok = v > want
        elif c.op == "le":
            ok = v <= want
        else:
            ok = v < want
        if not ok:
            return False
    return True


ORDERABLE = {
    "receiveddatetime",
    "sentdatetime",
    "lastmodifieddatetime",
    "createddatetime",
    "subject",
    "importance",
    "isread",
}


def parse_orderby(raw: str | None) -> list[tuple[str, bool]]:
    """→ [(prop, descending)]."""
    if not raw:
        return []
    out = []
    for part in raw.split(","):
        bits = part.split()
        if not bits:
            continue
        prop = bits[0].lower()
        if prop not in ORDERABLE:
            raise bad_request(f"Invalid orderby property '{bits[0]}'.", "ErrorInvalidUrlQuery")
        desc = len(bits) > 1 and bits[1].lower() == "desc"
        out.append((prop, desc))
    return out


def check_inefficient(clauses: list[Clause], order: list[tuple[str, bool]]) -> None:
    """§7.2: every $orderby property must also be in $filter, in the same order, and
    before any other filter property; otherwise 400 InefficientFilter."""
    if not clauses or not order:
        return
    props: list[str] = []
    for c in clauses:
        if c.prop not in props:
            props.append(c.prop)
    wanted = [p for p, _ in order]
    if props[: len(wanted)] != wanted:
        raise GraphError(
            400,
            "InefficientFilter",
            "The restriction or sort order is too complex for this operation.",
        )


def sort_key(m: Message, prop: str) -> Any:
    return {
        "receiveddatetime": m.received,
        "sentdatetime": m.sent or m.received,
        "lastmodifieddatetime": m.modified,
        "createddatetime": m.created,
        "subject": m.subject.lower(),
        "importance": m.importance,
        "isread": m.is_read,
    }[prop]


def apply_order(items: list[Message], order: list[tuple[str, bool]]) -> list[Message]:
    if not order:
        # Default order: newest receivedDateTime first (§7.2, UNCONFIRMED).
        return sorted(items, key=lambda m: (m.received, m.key), reverse=True)
    out = list(items)
    for prop, desc in reversed(order):
        # Stable sorts from the last key to the first give a multi-key order.
        out.sort(key=_keyer(prop), reverse=desc)
    return out


def _keyer(prop: str) -> Callable[[Message], Any]:
    def key(m: Message) -> Any:
        return (sort_key(m, prop), m.key)

    return key


_EXPAND_EXT = re.compile(
    r"^\s*singleValueExtendedProperties\s*\(\s*\$filter\s*=\s*(.+)\)\s*$", re.I | re.S
)
_ID_EQ = re.compile(r"\s*id\s+eq\s+'((?:[^']|'')*)'\s*", re.I)


@dataclass(frozen=True, slots=True)
class Expand:
    ext: tuple[ExtKey, ...] = ()
    attachments: bool = False


def parse_expand(raw: str | None) -> Expand:
    if not raw:
        return Expand()
    ext: list[ExtKey] = []
    attachments = False
    for item in _split_top_level(raw):
        if item.strip().lower() == "attachments":
            attachments = True
            continue
        m = _EXPAND_EXT.match(item)
        if not m:
            raise bad_request(f"Unsupported $expand '{item.strip()}'.", "ErrorInvalidUrlQuery")
        for alt in re.split(r"\s+or\s+", m.group(1).strip(), flags=re.I):
            idm = _ID_EQ.fullmatch(alt.strip("() "))
            if not idm:
                raise bad_request(
                    "Only 'id eq' filters are supported when expanding extended properties.",
                    "ErrorInvalidUrlQueryFilter",
                )
            key, _ = parse_ext_id(idm.group(1).replace("''", "'"))
            ext.append(key)
    return Expand(tuple(ext), attachments)


def _split_top_level(raw: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in raw:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return out
