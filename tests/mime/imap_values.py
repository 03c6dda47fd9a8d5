"""Test helper: read IMAP response values (as Dovecot writes them) into Python values.

The inverse of what ``bridge.mime`` produces: NIL → None, numbers → int, quoted
strings and literals → str, parenthesised lists → tuple. Only what FETCH ENVELOPE /
BODY / BODYSTRUCTURE responses need; it is a test oracle helper, not the wire parser.
"""

from __future__ import annotations

from typing import Any


def parse_values(data: bytes, pos: int = 0) -> tuple[Any, int]:
    """Parse one value starting at ``pos``; returns (value, next position)."""
    while data[pos : pos + 1] == b" ":
        pos += 1
    ch = data[pos : pos + 1]
    if ch == b"(":
        items: list[Any] = []
        pos += 1
        while True:
            while data[pos : pos + 1] == b" ":
                pos += 1
            if data[pos : pos + 1] == b")":
                return tuple(items), pos + 1
            item, pos = parse_values(data, pos)
            items.append(item)
    if ch == b'"':
        out = bytearray()
        pos += 1
        while data[pos : pos + 1] != b'"':
            if data[pos : pos + 1] == b"\\":
                pos += 1
            out += data[pos : pos + 1]
            pos += 1
        return out.decode("utf-8", "replace"), pos + 1
    if ch == b"{":
        close = data.index(b"}", pos)
        size = int(data[pos + 1 : close].rstrip(b"+"))
        start = close + 3  # "}\r\n"
        return data[start : start + size].decode("utf-8", "replace"), start + size
    end = pos
    while end < len(data) and data[end : end + 1] not in b" ()\r\n" and end < len(data):
        end += 1
    atom = data[pos:end].decode("ascii")
    if atom.upper() == "NIL":
        return None, end
    if atom.isdigit():
        return int(atom), end
    return atom, end


def fetch_items(response: bytes) -> dict[str, Any]:
    """``* n FETCH (NAME value NAME value ...)`` → {NAME: value} (names uppercased)."""
    start = response.index(b"FETCH (") + len(b"FETCH ")
    pos = start + 1
    items: dict[str, Any] = {}
    while True:
        while response[pos : pos + 1] == b" ":
            pos += 1
        if response[pos : pos + 1] == b")":
            return items
        end = pos
        depth = 0
        while True:
            c = response[end : end + 1]
            if c == b"[":
                depth += 1
            elif c == b"]":
                depth -= 1
            elif c == b" " and depth == 0:
                break
            end += 1
        name = response[pos:end].decode("ascii").upper()
        value, pos = parse_values(response, end + 1)
        items[name] = value


def split_fetches(output: bytes) -> dict[int, bytes]:
    """Split a session transcript into {sequence number: FETCH response bytes}.

    Literals may contain CRLF, so responses are delimited by scanning for literal
    markers rather than by lines.
    """
    result: dict[int, bytes] = {}
    pos = 0
    while True:
        start = output.find(b"* ", pos)
        if start < 0:
            return result
        line_end = output.find(b"\r\n", start)
        cursor = start
        # extend over literals: a line ending in {n} continues after n bytes
        while line_end >= 0 and output[line_end - 1 : line_end] == b"}":
            brace = output.rindex(b"{", cursor, line_end)
            size = int(output[brace + 1 : line_end - 1].rstrip(b"+"))
            cursor = line_end + 2 + size
            line_end = output.find(b"\r\n", cursor)
        line = output[start:line_end]
        words = line.split(b" ", 3)
        if len(words) > 2 and words[2] == b"FETCH" and words[1].isdigit():
            result[int(words[1])] = line
        pos = line_end + 2 if line_end >= 0 else len(output)
