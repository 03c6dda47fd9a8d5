"""BODY and BODYSTRUCTURE against RFC 3501 §7.4.2 examples and Dovecot-checked cases."""

from __future__ import annotations

from bridge.mime import body_structure, body_structures, parse_structure

from .messages import NESTED, RFC3501_ENVELOPE_MESSAGE, crlf, rfc3501_bodystructure_message


def test_rfc3501_example_body() -> None:
    # RFC 3501 §7.4.2, the BODYSTRUCTURE example, in its non-extensible BODY form.
    assert body_structure(rfc3501_bodystructure_message(), extended=False) == (
        ("TEXT", "PLAIN", ("CHARSET", "US-ASCII"), None, None, "7BIT", 1152, 23),
        (
            "TEXT",
            "PLAIN",
            ("CHARSET", "US-ASCII", "NAME", "cc.diff"),
            "<960723163407.20117h@cac.washington.edu>",
            "Compiler diff",
            "BASE64",
            4554,
            73,
        ),
        "MIXED",
    )


def test_rfc3501_example_bodystructure_has_extension_data() -> None:  # fmt: skip
    assert body_structure(rfc3501_bodystructure_message()) == (
        (
            "TEXT",
            "PLAIN",
            ("CHARSET", "US-ASCII"),
            None,
            None,
            "7BIT",
            1152,
            23,
            None,
            None,
            None,
            None,
        ),
        (
            "TEXT",
            "PLAIN",
            ("CHARSET", "US-ASCII", "NAME", "cc.diff"),
            "<960723163407.20117h@cac.washington.edu>",
            "Compiler diff",
            "BASE64",
            4554,
            73,
            None,
            None,
            None,
            None,
        ),
        "MIXED",
        ("BOUNDARY", "xyz"),
        None,
        None,
        None,
    )


def test_single_part_keeps_case_and_defaults_encoding() -> None:
    assert body_structure(RFC3501_ENVELOPE_MESSAGE) == (
        "TEXT", "PLAIN", ("CHARSET", "US-ASCII"), None, None, "7bit", 55, 1,
        None, None, None, None,
    )  # fmt: skip


def test_no_content_type_defaults_to_text_plain_us_ascii() -> None:
    message = crlf("Subject: hi\nFrom: A <a@b.c>\n\nhello")
    # RFC 2045 §5.2 default; a last line without a line ending is not counted
    assert body_structure(message, extended=False) == (
        "text", "plain", ("charset", "us-ascii"), None, None, "7bit", 5, 0,
    )  # fmt: skip


def test_text_part_without_charset_gets_default_appended() -> None:
    message = crlf("Content-Type: text/plain; format=flowed\n\nx\n")
    assert body_structure(message, extended=False)[2] == ("format", "flowed", "charset", "us-ascii")


def test_non_text_without_params_is_nil() -> None:
    message = crlf("Content-Type: image/png\nContent-Transfer-Encoding: base64\n\niVBO\n")
    assert body_structure(message, extended=False) == (
        "image", "png", None, None, None, "base64", 6,
    )  # fmt: skip


NESTED_BODYSTRUCTURE = (
    (
        (
            "TEXT", "Plain", ("CHARSET", "UTF-8", "format", "flowed"), "<cid1@x>", "the text",
            "Quoted-Printable", 15, 1, None, None, None, None,
        ),
        ("text", "html", ("charset", "us-ascii"), None, None, "7bit", 9, 0, None, None, None, None),
        "alternative", ("boundary", "inner"), None, None, None,
    ),
    (
        "application", "pdf", ("name", "r.pdf"), None, None, "base64", 4,
        "Q2hlY2sgSW50ZWdyaXR5IQ==",
        # RFC 2231 continuations merged, still encoded; plain parameters first
        ("ATTACHMENT", ("size", "12", "filename*", "utf-8''%E2%82%ACrest.pdf")),
        ("fr",),
        None,
    ),
    (
        "message", "rfc822", None, None, None, "7bit", 182,
        (
            None, "fwd", ((None, None, "inner", "x.y"),), ((None, None, "inner", "x.y"),),
            ((None, None, "inner", "x.y"),), None, None, None, None, None,
        ),
        (
            ("text", "plain", ("charset", "us-ascii"), None, None, "7bit", 13, 0,
             None, None, None, None),
            ("image", "png", None, None, None, "base64", 4, None, None, None, None),
            "mixed", ("boundary", "zz"), None, None, None,
        ),
        13, None, None, None, None,
    ),
    ("text", "plain", ("charset", "us-ascii"), None, None, "7bit", 4, 0,
     None, ("inline", None), None, None),
    "Mixed", ("boundary", "outer", "foo", "bar"), None, ("en", "de"), "http://x/y",
)  # fmt: skip


def test_nested_multipart_bodystructure_matches_dovecot() -> None:
    assert body_structure(NESTED) == NESTED_BODYSTRUCTURE


def test_body_is_bodystructure_without_extension_data() -> None:
    basic, ext = body_structures(NESTED)
    alternative, pdf, message, junk, subtype = basic
    assert subtype == "Mixed"
    assert alternative[-1] == "alternative" and len(alternative) == 3
    assert pdf == ("application", "pdf", ("name", "r.pdf"), None, None, "base64", 4)
    assert message[-1] == 13 and message[8][-1] == "mixed" and len(message[8]) == 3
    assert junk == ("text", "plain", ("charset", "us-ascii"), None, None, "7bit", 4, 0)
    assert ext == NESTED_BODYSTRUCTURE


def test_structure_of_a_given_entity() -> None:
    root = parse_structure(NESTED)
    forwarded = root.children[2].encapsulated
    assert forwarded is not None
    assert body_structure(NESTED, forwarded, extended=False) == (
        ("text", "plain", ("charset", "us-ascii"), None, None, "7bit", 13, 0),
        ("image", "png", None, None, None, "base64", 4),
        "mixed",
    )


def test_multipart_digest_parts_default_to_message_rfc822() -> None:
    message = crlf(
        "From: x@y.z\nContent-Type: multipart/digest; boundary=d\n\n--d\n\n"
        "From: a@b.c\nSubject: one\n\nbody one\n--d\nContent-Type: text/plain\n\nexplicit\n--d--\n"
    )
    first, second, subtype = body_structure(message, extended=False)
    assert subtype == "digest"
    assert first[:7] == ("message", "rfc822", None, None, None, "7bit", 37)
    assert first[7][1] == "one"  # envelope of the digested message
    assert first[8] == ("text", "plain", ("charset", "us-ascii"), None, None, "7bit", 8, 0)
    assert first[9] == 3
    assert second == ("text", "plain", ("charset", "us-ascii"), None, None, "7bit", 8, 0)


def test_empty_multipart_gets_one_empty_text_part() -> None:
    message = crlf("Content-Type: multipart/mixed; boundary=e\n\n--e--\n")
    assert body_structure(message) == (
        ("text", "plain", ("charset", "us-ascii"), None, None, "7bit", 0, 0,
         None, None, None, None),
        "mixed", ("boundary", "e"), None, None, None,
    )  # fmt: skip


def test_garbage_content_type_is_text_plain() -> None:
    # RFC 2045 §5.2 (Dovecot would send "garbage" "" here; documented difference)
    message = crlf("Content-Type: garbage\n\njunk\n")
    assert body_structure(message, extended=False)[:3] == (
        "text",
        "plain",
        ("charset", "us-ascii"),
    )


def test_multipart_without_boundary_is_text_plain() -> None:
    message = crlf("Content-Type: multipart/mixed\n\nno boundary\n")
    assert body_structure(message, extended=False) == (
        "text", "plain", ("charset", "us-ascii"), None, None, "7bit", 13, 1,
    )  # fmt: skip


def test_message_rfc822_with_base64_is_still_a_message() -> None:
    # Dovecot parses the encoded text as a header-only message; so do we.
    message = crlf(
        "Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n"
        "RnJvbTogYUBiLmMNCg0KYm9keQ0K\n"
    )
    assert body_structure(message, extended=False) == (
        "message", "rfc822", None, None, None, "base64", 30,
        (None,) * 10,
        ("text", "plain", ("charset", "us-ascii"), None, None, "7bit", 0, 0),
        1,
    )  # fmt: skip


def test_rfc2231_parameters_merged_like_dovecot() -> None:
    message = crlf(
        "Content-Type: text/plain; charset=\"us-ascii\"; name*=iso-8859-1'en'%A3; "
        'x*0="a"; x*1="b"\n\nbody\n'
    )
    assert body_structure(message, extended=False)[2] == (
        "charset", "us-ascii", "name*", "iso-8859-1'en'%A3", "x", "ab",
    )  # fmt: skip


def test_parameters_with_comments_quotes_and_odd_values() -> None:
    message = crlf(
        'Content-Type: multipart/mixed (comment); boundary=----=_Part_1 ; a="q\\"uote";\n'
        " b = c\n\n------=_Part_1\n\nx\n------=_Part_1--\n"
    )
    structure = body_structure(message)
    assert structure[-4] == ("boundary", "----=_Part_1", "a", 'q"uote', "b", "c")
    assert structure[0][6] == 1  # the part was found with the unquoted "=" boundary


def test_bare_lf_sizes_count_stored_octets() -> None:
    message = (
        b"From: a@b\nSubject: lf\nContent-Type: multipart/mixed; boundary=b\n\n"
        b"--b\nContent-Type: text/plain\n\nline1\nline2\n--b--\n"
    )
    # "line1\nline2": 11 octets as stored (Dovecot, serving CRLF, would say 12)
    assert body_structure(message, extended=False) == (
        ("text", "plain", ("charset", "us-ascii"), None, None, "7bit", 11, 1),
        "mixed",
    )


def test_disposition_language_location_on_single_part() -> None:
    message = crlf(
        "Content-Type: application/octet-stream\n"
        'Content-Disposition: attachment;\n filename="a b.bin"\n'
        "Content-Language: en-GB (British)\n"
        "Content-Location: http://example.com/a\n"
        "Content-MD5: abc=\n\nxx\n"
    )
    assert body_structure(message)[7:] == (
        "abc=",
        ("attachment", ("filename", "a b.bin")),
        ("en-GB",),
        "http://example.com/a",
    )
