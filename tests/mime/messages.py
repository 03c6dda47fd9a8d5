"""Hand-written messages shared by the MIME tests (bytes exactly as a server stores them)."""

from __future__ import annotations


def crlf(text: str) -> bytes:
    """Write test messages with \\n for readability; store them with CRLF."""
    return text.replace("\n", "\r\n").encode("utf-8")


# RFC 3501 §7.4.2 / §8 example: the ENVELOPE of the "IMAP4rev1 WG mtg summary" message.
RFC3501_ENVELOPE_MESSAGE = crlf(
    """Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)
From: Terry Gray <gray@cac.washington.edu>
Subject: IMAP4rev1 WG mtg summary and minutes
To: imap@cac.washington.edu
cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>
Message-Id: <B27397-0100000@cac.washington.edu>
MIME-Version: 1.0
Content-Type: TEXT/PLAIN; CHARSET=US-ASCII

Hello Joe, do you think we can meet at 3:30 tomorrow?
"""
)


def rfc3501_bodystructure_message() -> bytes:
    """A message whose BODY is the RFC 3501 §7.4.2 example, sizes and lines included:

    (("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 1152 23)("TEXT" "PLAIN"
    ("CHARSET" "US-ASCII" "NAME" "cc.diff") "<960723163407.20117h@cac.washington.edu>"
    "Compiler diff" "BASE64" 4554 73) "MIXED")
    """
    text = ("x" * 48 + "\r\n") * 23 + "ab"  # 1152 octets, 23 line ends
    encoded = ("QUJD" * 15 + "\r\n") * 73 + "QUJD" * 7  # 4554 octets, 73 line ends
    assert len(text) == 1152 and len(encoded) == 4554
    return (
        "From: gray@cac.washington.edu\r\n"
        "Subject: diff\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: MULTIPART/MIXED; BOUNDARY="xyz"\r\n'
        "\r\n"
        "--xyz\r\n"
        "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n"
        "Content-Transfer-Encoding: 7BIT\r\n"
        "\r\n" + text + "\r\n"
        "--xyz\r\n"
        "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII; NAME=cc.diff\r\n"
        "Content-ID: <960723163407.20117h@cac.washington.edu>\r\n"
        "Content-Description: Compiler diff\r\n"
        "Content-Transfer-Encoding: BASE64\r\n"
        "\r\n" + encoded + "\r\n"
        "--xyz--\r\n"
    ).encode("ascii")


# multipart/alternative inside multipart/mixed, an attachment with RFC 2231 filename,
# a forwarded multipart message, group addresses, encoded words. Expected values in
# the tests were checked against Dovecot 2.3.
NESTED = crlf(
    """From: =?UTF-8?B?SsO2cmc=?= <jorg@example.com>
To: undisclosed-recipients:;, Friends: a@b.c, "Bob X" <bob@x.org>;, c@d.e
Cc: "quoted \\"name\\"" <q@e.f>, (comment) plain@host, <@route1,@route2:rt@host>
Subject: =?ISO-8859-1?Q?caf=E9?= test
 folded
Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)
Message-ID: <1234@local.machine.example>
In-Reply-To: <a@b> <c@d>
MIME-Version: 1.0
Content-Type: MULTIPART/Mixed; boundary="outer"; foo=bar
Content-Language: en, de
Content-Location: http://x/y

preamble --outer not a boundary
--outer
Content-Type: multipart/alternative; boundary=inner

--inner
Content-Type: TEXT/Plain; CHARSET=UTF-8; format=flowed
Content-Transfer-Encoding: Quoted-Printable
Content-ID: <cid1@x>
Content-Description: the text

hello=20
world
--inner
Content-Type: text/html

<p>hi</p>
--inner--
--outer
Content-Type: application/pdf; name="r.pdf"
Content-Transfer-Encoding: base64
Content-Disposition: ATTACHMENT; filename*0*=utf-8''%E2%82%AC; filename*1="rest.pdf"; size=12
Content-Language: fr
Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==

AAAA
--outer
Content-Type: message/rfc822

From: inner@x.y
Subject: fwd
Content-Type: multipart/mixed; boundary=zz

--zz

implicit text
--zz
Content-Type: image/png
Content-Transfer-Encoding: base64

iVBO
--zz--
--outer
Content-Disposition: inline

junk
--outer--
epilogue
--outer
"""
)
