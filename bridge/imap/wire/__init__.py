"""Sans-I/O IMAP4rev1 wire layer: bytes → command objects, responses → bytes.

Owns framing (lines, literals, LITERAL+), the command grammar, IDLE/DONE and AUTHENTICATE
continuation lines, size limits, modified UTF-7 and response serialisation.  STANDARD
LIBRARY ONLY: it must not import anything outside ``bridge.imap.wire`` (a test enforces
this).  It never touches a socket, clock or event loop — modelled on python-hyper/h11.

API for the session layer
-------------------------
::

    conn = ServerConnection(max_line=64 * 1024, max_literal=35 * 2**20,
                            max_command_literal=64 * 1024, max_nesting=32,
                            literal_plus=True)
    conn.receive_data(data)                 # whatever the socket gave us
    while True:
        ev = conn.next_event()
        if ev is NEED_DATA: break           # (or isinstance(ev, NeedData))
        ...

``next_event()`` returns exactly one of:

* a command dataclass from :mod:`.commands` (``Fetch``, ``Login``, ...; all have ``tag``);
* :class:`ContinuationNeeded` ``(tag, size)`` — a synchronising literal ``{size}`` was
  announced.  Reply ``conn.accept_literal()`` (returns ``b"+ Ready for literal data\\r\\n"``
  to write) or ``conn.reject_literal(resp)`` (returns ``resp`` to write; the command is
  over).  Calling ``next_event()`` before deciding raises :class:`LocalProtocolError`.
  Literals over the limit never get here: they come back as a ``ProtocolError`` with
  ``NO [TOOBIG]`` (sync) or, after the octets were swallowed, ``BAD [TOOBIG]`` (``{n+}``).
* :class:`ProtocolError` ``(tag, response, fatal)`` — write ``response`` (a complete
  tagged BAD/NO, ``* BAD`` when no tag could be read, or ``* BYE``).  If ``fatal``, close.
  The connection has already resynchronised; keep calling ``next_event()``.
* :class:`ContinuationLine` ``(data)`` — only after ``conn.expect_continuation_line()``
  (AUTHENTICATE: send ``+ <challenge>`` then call it).  ``.cancelled`` is the ``*`` line;
  ``.decode_base64()`` raises ``ValueError`` on junk.  ``Authenticate.initial_response``
  (SASL-IR) is already decoded; ``b""`` means ``=``.
* :class:`Done` — only after ``conn.enter_idle()`` (send ``+ idling`` first).  Any other
  line during IDLE is a ``ProtocolError`` tagged with the IDLE tag (``BAD Expected DONE``)
  and IDLE is over.
* :data:`NEED_DATA`.

Parsing is lazy, so pipelined commands wait in the buffer until you ask for them: call
``enter_idle()`` / ``expect_continuation_line()`` BEFORE the next ``next_event()``.

Values: :class:`SequenceSet` (``resolve(largest)``, ``iter_ranges``, ``contains``,
``exceeds`` — read :mod:`.sequence` for the ``*``/empty-mailbox rules),
:func:`format_sequence_set`, :class:`FetchAttribute` (``response_name()``,
``sets_seen``), :class:`Section`, :class:`SearchKey` (tree documented on the class),
:class:`ListReturn`, :class:`QresyncParams`.  Mailbox names arrive decoded from modified
UTF-7 with ``INBOX`` normalised.

Output: :func:`tagged`, :func:`untagged`, :func:`continuation`, :func:`render_fetch`,
:func:`render`, :func:`render_flags`, :func:`format_internaldate`, wrappers
:class:`Atom` / :class:`Literal` / :class:`Raw`, and :func:`encode_mailbox` /
:func:`decode_mailbox`; :func:`render_mailbox` gives a name ready for LIST/STATUS
responses (modified UTF-7, quoted).

Left to the session on purpose (the wire knows syntax, not state): whether a command is
allowed in the current state; "VANISHED/QRESYNC need ENABLE QRESYNC" (RFC 7162 §3.2.5/6);
sequence numbers above EXISTS (``SequenceSet.exceeds``); adding UID to UID FETCH
responses; refusing ``\\Recent`` in STORE/APPEND.  Not supported by the grammar (tagged
BAD): literal8/BINARY, MULTIAPPEND, CATENATE, SEARCHRES ``$``/``SAVE``, WITHIN, OBJECTID
items, CREATE ``(USE ...)``, SETQUOTA, COMPRESS.
"""

from __future__ import annotations

from .commands import (
    Append,
    Authenticate,
    Capability,
    Check,
    Close,
    Command,
    Copy,
    Create,
    Delete,
    Done,
    Enable,
    Examine,
    Expunge,
    Fetch,
    FetchAttribute,
    GetQuota,
    GetQuotaRoot,
    Id,
    Idle,
    List,
    ListReturn,
    Login,
    Logout,
    Lsub,
    Move,
    Namespace,
    Noop,
    QresyncParams,
    Rename,
    Search,
    SearchKey,
    Section,
    Select,
    StartTls,
    Status,
    Store,
    Subscribe,
    Unselect,
    Unsubscribe,
)
from .connection import Event, ServerConnection
from .events import (
    NEED_DATA,
    ContinuationLine,
    ContinuationNeeded,
    LocalProtocolError,
    NeedData,
    ProtocolError,
)
from .parser import ParseError, parse_command
from .responses import continuation, render_fetch, tagged, untagged
from .sequence import SequenceSet, format_sequence_set
from .serialize import (
    Atom,
    Literal,
    Raw,
    format_internaldate,
    render,
    render_flags,
    render_mailbox,
)
from .utf7 import Utf7Error, decode_mailbox, encode_mailbox

__all__ = [
    "NEED_DATA",
    "Append",
    "Atom",
    "Authenticate",
    "Capability",
    "Check",
    "Close",
    "Command",
    "ContinuationLine",
    "ContinuationNeeded",
    "Copy",
    "Create",
    "Delete",
    "Done",
    "Enable",
    "Event",
    "Examine",
    "Expunge",
    "Fetch",
    "FetchAttribute",
    "GetQuota",
    "GetQuotaRoot",
    "Id",
    "Idle",
    "List",
    "ListReturn",
    "Literal",
    "LocalProtocolError",
    "Login",
    "Logout",
    "Lsub",
    "Move",
    "Namespace",
    "NeedData",
    "Noop",
    "ParseError",
    "ProtocolError",
    "QresyncParams",
    "Raw",
    "Rename",
    "Search",
    "SearchKey",
    "Section",
    "Select",
    "SequenceSet",
    "ServerConnection",
    "StartTls",
    "Status",
    "Store",
    "Subscribe",
    "Unselect",
    "Unsubscribe",
    "Utf7Error",
    "continuation",
    "decode_mailbox",
    "encode_mailbox",
    "format_internaldate",
    "format_sequence_set",
    "parse_command",
    "render",
    "render_fetch",
    "render_flags",
    "render_mailbox",
    "tagged",
    "untagged",
]
