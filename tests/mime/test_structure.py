"""The structure scanner: offsets, boundaries, nesting, malformed input."""

from __future__ import annotations

from bridge.mime import PartKind, find_part, parse_structure
from bridge.mime.structure import MAX_DEPTH

from .messages import NESTED, crlf


def _bodies(message: bytes) -> list[bytes]:
    root = parse_structure(message)
    return [message[c.body_start : c.end] for c in root.children]


def test_offsets_cover_header_and_body_exactly() -> None:
    message = crlf("Subject: x\nFrom: a@b\n\nline 1\nline 2\n")
    root = parse_structure(message)
    assert message[root.start : root.body_start] == crlf("Subject: x\nFrom: a@b\n\n")
    assert message[root.body_start : root.end] == crlf("line 1\nline 2\n")
    assert [f.name for f in root.fields] == ["Subject", "From"]


def test_crlf_before_delimiter_belongs_to_the_delimiter() -> None:
    # RFC 2046 §5.1.1: delimiter := CRLF dash-boundary
    message = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b\n\ntwo\n\n--b--\n")
    assert _bodies(message) == [b"one", b"two\r\n"]


def test_boundary_in_preamble_and_epilogue_is_ignored() -> None:
    root = parse_structure(NESTED)
    assert [c.media.lower for c in root.children] == [
        "multipart/alternative",
        "application/pdf",
        "message/rfc822",
        "text/plain",
    ]
    assert NESTED[root.children[3].body_start : root.children[3].end] == b"junk"


def test_boundary_must_start_a_line_and_be_followed_only_by_padding() -> None:
    message = crlf(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nsee --b here\n--bb\n--b x\n"
        "--b \t\n\nsecond\n--b--\n"
    )
    assert _bodies(message) == [crlf("see --b here\n--bb\n--b x"), b"second"]


def test_missing_final_boundary_runs_to_the_end() -> None:
    message = crlf("Content-Type: multipart/mixed; boundary=q\n\n--q\n\nfirst\n--q\n\nlast\n")
    assert _bodies(message) == [b"first", b"last\r\n"]


def test_outer_boundary_ends_an_unterminated_inner_multipart() -> None:
    message = crlf(
        "Content-Type: multipart/mixed; boundary=q\n\n--q\n"
        "Content-Type: multipart/alternative; boundary=r\n\n--r\n\ninner never closed\n"
        "--q\n\nafter\n--q--\n"
    )
    root = parse_structure(message)
    inner = root.children[0]
    assert inner.kind is PartKind.MULTIPART
    leaf = inner.children[0]
    assert message[leaf.body_start : leaf.end] == b"inner never closed"
    assert message[root.children[1].body_start : root.children[1].end] == b"after"


def test_nested_close_delimiter_keeps_its_line_ending_like_dovecot() -> None:
    message = crlf(
        "Content-Type: multipart/mixed; boundary=o\n\n--o\n"
        "Content-Type: multipart/alternative; boundary=i\n\n--i\n\na\n--i--\n"
        "--o\nContent-Type: multipart/alternative; boundary=j\n\n--j\n\na\n--j--\nepilogue\n"
        "--o--\n"
    )
    first, second = parse_structure(message).children
    assert message[first.body_start : first.end] == crlf("--i\n\na\n--i--\n")
    assert message[second.body_start : second.end] == crlf("--j\n\na\n--j--\nepilogue")


def test_bare_lf_message() -> None:
    message = b"Subject: x\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b--\n"
    root = parse_structure(message)
    assert root.body_start == message.index(b"\n\n") + 2
    assert _bodies(message) == [b"one"]


def test_unterminated_header_means_no_body() -> None:
    message = b"Subject: x\r\nFrom: a@b"
    root = parse_structure(message)
    assert (root.body_start, root.end) == (len(message), len(message))
    assert [f.name for f in root.fields] == ["Subject", "From"]


def test_continuation_lines_and_lines_without_colon() -> None:
    message = crlf("Subject: a\n b\n\tc\nno colon here\nX: y\n\nbody")
    fields = parse_structure(message).fields
    assert [f.name for f in fields] == ["Subject", "no colon here", "X"]
    assert message[fields[0].start : fields[0].end] == crlf("Subject: a\n b\n\tc\n")
    assert fields[0].value(message) == "a b\tc"


def test_message_rfc822_parts_are_numbered_under_it() -> None:
    root = parse_structure(NESTED)
    forwarded = find_part(root, (3,))
    assert forwarded is not None and forwarded.kind is PartKind.MESSAGE
    png = find_part(root, (3, 2))
    assert png is not None and png.media.lower == "image/png"
    assert find_part(root, (1, 2)) is not None
    assert find_part(root, (1, 2, 1)) is None  # a leaf has no sub-parts
    assert find_part(root, (0,)) is None and find_part(root, (5,)) is None


def test_non_multipart_message_has_only_part_one() -> None:
    root = parse_structure(crlf("Subject: x\n\nhi\n"))
    assert find_part(root, (1,)) is root
    assert find_part(root, (2,)) is None


def test_deep_nesting_is_bounded() -> None:
    depth = MAX_DEPTH * 3
    head = "".join(
        f"Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n" for i in range(depth)
    )
    message = (head + "\r\ndeep\r\n").encode()
    part = parse_structure(message)
    levels = 0
    while part.children:
        part = part.children[0]
        levels += 1
    assert levels == MAX_DEPTH
    assert part.kind is PartKind.LEAF


def test_deeply_nested_message_rfc822_is_bounded() -> None:
    message = b"Content-Type: message/rfc822\r\n\r\n" * (MAX_DEPTH * 4) + b"x"
    part = parse_structure(message)
    levels = 0
    while part.encapsulated is not None:
        part = part.encapsulated
        levels += 1
    assert levels == MAX_DEPTH


def test_many_parts_linear() -> None:
    parts = "".join(f"--b\r\n\r\npart {i}\r\n" for i in range(5000))
    message = f"Content-Type: multipart/mixed; boundary=b\r\n\r\n{parts}--b--\r\n".encode()
    root = parse_structure(message)
    assert len(root.children) == 5000
    last = root.children[-1]
    assert message[last.body_start : last.end] == b"part 4999"
