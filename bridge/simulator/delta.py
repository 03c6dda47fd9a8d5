"""Delta queries: per-folder message delta and folder-hierarchy delta (§16, §6.5).

Theory of operation: every folder keeps a change log of (seq, message key, kind)
entries; the mailbox keeps one for folders. A *round* starts with either no token
(initial: the current items) or a ``$deltatoken`` naming the sequence number up to which
the client is in sync (incremental: changes after it). The round's entry list is fixed
when it starts and kept in a bounded cache; ``$skiptoken`` links page through it. The
last page carries a ``$deltatoken`` for the sequence number observed when the round
began, so changes made during the round are delivered again next round (replays are
allowed by §16.4; skipping would not be).

Tokens are opaque: base64url JSON (mailbox, folder, epoch, options, position) plus an
HMAC with a per-process random key. ``410 SyncStateNotFound`` is answered when a token's
sequence number fell out of the bounded log, its epoch was bumped by the control API,
or its round was evicted (§16.5). Must not import anything from ``bridge`` outside
``bridge.simulator``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .context import Ctx, SimResponse
from .errors import GraphError, bad_request
from .model import ChangeKind, Folder, Mailbox
from .odata import Expand, parse_expand, parse_filter, parse_select
from .render import render_folder, render_message

FOLDERS_SCOPE = "__folders__"


@dataclass(frozen=True, slots=True)
class Entry:
    key: str  # message key (as str) or folder id
    removed: bool
    rest_id: str = ""
    immutable_id: str = ""


@dataclass
class Round:
    user_id: str
    scope: str
    epoch: int
    entries: list[Entry]
    next_since: int
    options: dict[str, Any]


class DeltaService:
    def __init__(self, max_rounds: int = 1024) -> None:
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self.rounds: OrderedDict[str, Round] = OrderedDict()
        self.max_rounds = max_rounds

    # -- tokens -------------------------------------------------------------------
    def encode(self, data: dict[str, Any]) -> str:
        raw = json.dumps(data, separators=(",", ":")).encode()
        mac = hmac.new(self._key, raw, hashlib.sha256).digest()[:12]
        return base64.urlsafe_b64encode(raw + mac).decode().rstrip("=")

    def decode(self, token: str) -> dict[str, Any]:
        try:
            blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            raw, mac = blob[:-12], blob[-12:]
            good = hmac.compare_digest(mac, hmac.new(self._key, raw, hashlib.sha256).digest()[:12])
            data = json.loads(raw) if good else None
        except (ValueError, TypeError):
            data = None
        if not isinstance(data, dict):
            raise GraphError(410, "SyncStateInvalid", "The sync state is invalid.")
        return data

    def store_round(self, rnd: Round) -> str:
        rid = secrets.token_hex(8)
        with self._lock:
            self.rounds[rid] = rnd
            while len(self.rounds) > self.max_rounds:
                self.rounds.popitem(last=False)
        return rid

    def get_round(self, rid: str) -> Round | None:
        with self._lock:
            return self.rounds.get(rid)


def _gone(since: int, highest: int, location: str) -> GraphError:
    return GraphError(
        410,
        "SyncStateNotFound",
        f"The sync state generation is not found; generation={since};[highest={highest}]"
        f"[{highest}].",
        headers={"Location": location},
    )


def _page_size(ctx: Ctx, options: dict[str, Any]) -> int:
    pref = ctx.prefer.get("odata.maxpagesize", "")
    if pref.isdigit() and int(pref) > 0:
        return min(int(pref), 1000)
    if options.get("top"):
        return min(int(options["top"]), 1000)
    return ctx.config.default_page_size


def _options_from_query(ctx: Ctx, *, messages: bool) -> dict[str, Any]:
    q = ctx.req.query
    opts: dict[str, Any] = {}
    select = parse_select(q)
    if select is not None:
        opts["select"] = select
    if messages:
        if q.get("$expand"):
            parse_expand(q["$expand"])  # validate now; stored raw
            opts["expand"] = q["$expand"]
        if q.get("$filter"):
            clauses = parse_filter(q["$filter"])
            # §16.1: only receivedDateTime ge/gt is allowed in a delta filter.
            if any(c.prop != "receiveddatetime" or c.op not in ("ge", "gt") for c in clauses):
                raise bad_request(
                    "Only receivedDateTime ge/gt filters are supported on delta.",
                    "ErrorInvalidUrlQueryFilter",
                )
            opts["filter"] = q["$filter"]
        if q.get("$orderby"):
            if q["$orderby"].strip().lower() != "receiveddatetime desc":
                raise bad_request(
                    "Only $orderby=receivedDateTime desc is supported on delta.",
                    "ErrorInvalidUrlQuery",
                )
            opts["orderby"] = True
        change = q.get("changeType")
        if change:
            kinds = {c.strip().lower() for c in change.split(",") if c.strip()}
            if not kinds <= {"created", "updated", "deleted"}:
                raise bad_request(f"Invalid changeType '{change}'.", "ErrorInvalidUrlQuery")
            opts["changeType"] = sorted(kinds)
    if q.get("$top"):
        opts["top"] = int(q["$top"]) if q["$top"].isdigit() else None
    return opts


def _link(ctx: Ctx, user_id: str, scope: str, param: str, token: str) -> str:
    if scope == FOLDERS_SCOPE:
        path = f"/v1.0/users/{user_id}/mailFolders/delta"
    else:
        path = f"/v1.0/users/{user_id}/mailFolders('{quote(scope, safe='')}')/messages/delta"
    return f"{ctx.base_url}{path}?{param}={token}"


def message_delta(ctx: Ctx) -> SimResponse:
    svc: DeltaService = ctx.services.delta
    world, mb = ctx.world, ctx.mb
    ref = ctx.params["f"]
    try:
        folder = world.folder(mb, ref)
    except GraphError:
        raise GraphError(
            404, "ErrorSyncFolderNotFound", "The sync folder was not found or was deleted."
        ) from None
    return _delta(ctx, svc, mb, folder.id, folder)


def folder_delta(ctx: Ctx) -> SimResponse:
    return _delta(ctx, ctx.services.delta, ctx.mb, FOLDERS_SCOPE, None)


def _delta(
    ctx: Ctx, svc: DeltaService, mb: Mailbox, scope: str, folder: Folder | None
) -> SimResponse:
    world = ctx.world
    q = ctx.req.query
    epoch = mb.folder_epoch if folder is None else folder.epoch
    floor = mb.folder_log_floor if folder is None else folder.log_floor
    fresh = _link(ctx, mb.user_id, scope, "", "").rstrip("?=")
    if "$skiptoken" in q:
        tok = svc.decode(q["$skiptoken"])
        _check_scope(tok, mb, scope)
        rnd = svc.get_round(tok["r"])
        if rnd is None or tok.get("e") != epoch or rnd.epoch != epoch:
            raise _gone(tok.get("s", 0), world.seq, fresh)
        return _page(ctx, svc, mb, folder, tok["r"], rnd, int(tok["p"]), bool(tok.get("t")))
    if "$deltatoken" in q:
        tok = svc.decode(q["$deltatoken"])
        _check_scope(tok, mb, scope)
        since = int(tok["s"])
        if tok.get("e") != epoch or since < floor:
            raise _gone(since, world.seq, fresh)
        options = tok.get("o", {})
        entries = (
            _folder_changes(ctx, mb, since)
            if folder is None
            else _message_changes(ctx, folder, since, options)
        )
    else:
        options = _options_from_query(ctx, messages=folder is not None)
        entries = (
            _folder_initial(ctx, mb)
            if folder is None
            else _message_initial(ctx, mb, folder, options)
        )
    rnd = Round(mb.user_id, scope, epoch, entries, world.seq, options)
    rid = svc.store_round(rnd)
    return _page(ctx, svc, mb, folder, rid, rnd, 0, False)


def _check_scope(tok: dict[str, Any], mb: Mailbox, scope: str) -> None:
    if tok.get("u") != mb.user_id or tok.get("f") != scope:
        raise bad_request(
            "The delta token does not belong to this folder.", "ErrorInvalidSyncState"
        )


def _page(
    ctx: Ctx,
    svc: DeltaService,
    mb: Mailbox,
    folder: Folder | None,
    rid: str,
    rnd: Round,
    pos: int,
    tail: bool,
) -> SimResponse:
    size = _page_size(ctx, rnd.options)
    chosen = [] if tail else rnd.entries[pos : pos + size]
    if ctx.faults.delta_replay and pos > 0 and not tail:
        # Replay: the previous page's last entry appears again (§16.4).
        chosen = [rnd.entries[pos - 1], *chosen]
    end = pos + size
    select = rnd.options.get("select")
    expand = parse_expand(rnd.options.get("expand"))
    value = [_render(ctx, mb, folder, e, select, expand) for e in chosen]
    body: dict[str, Any] = {
        "@odata.context": f"{ctx.graph_root}/$metadata#Collection("
        + ("mailFolder" if folder is None else "message")
        + ")",
        "value": value,
    }
    base = {"u": rnd.user_id, "f": rnd.scope, "e": rnd.epoch, "s": rnd.next_since}
    if end < len(rnd.entries):
        token = svc.encode({**base, "r": rid, "p": end})
        body["@odata.nextLink"] = _link(ctx, rnd.user_id, rnd.scope, "$skiptoken", token)
    elif ctx.faults.delta_trailing_empty_page and not tail:
        token = svc.encode({**base, "r": rid, "p": end, "t": 1})
        body["@odata.nextLink"] = _link(ctx, rnd.user_id, rnd.scope, "$skiptoken", token)
    else:
        token = svc.encode({**base, "o": rnd.options})
        body["@odata.deltaLink"] = _link(ctx, rnd.user_id, rnd.scope, "$deltatoken", token)
    return SimResponse.json(body, headers=ctx.response_headers)


def _render(
    ctx: Ctx,
    mb: Mailbox,
    folder: Folder | None,
    e: Entry,
    select: list[str] | None,
    expand: Expand,
) -> dict[str, Any]:
    if folder is None:
        f = mb.folders.get(e.key)
        if e.removed or f is None or not ctx.world.in_ipm_subtree(mb, f):
            return {
                "@odata.type": "#microsoft.graph.mailFolder",
                "id": e.key,
                "@removed": {"reason": "deleted"},
            }
        return {
            "@odata.type": "#microsoft.graph.mailFolder",
            **render_folder(ctx.world, mb, f, select),
        }
    m = mb.messages.get(int(e.key))
    if e.removed or m is None or m.folder_id != folder.id:
        ident = e.immutable_id if ctx.immutable else e.rest_id
        return {
            "@odata.type": "#microsoft.graph.message",
            "id": ident,
            "@removed": {"reason": "deleted"},
        }
    return render_message(ctx, m, select, expand, with_type=True)


def _message_initial(ctx: Ctx, mb: Mailbox, folder: Folder, options: dict[str, Any]) -> list[Entry]:
    items = [mb.messages[k] for k in folder.messages]
    if options.get("filter"):
        from .odata import matches

        clauses = parse_filter(options["filter"])
        items = [m for m in items if matches(m, clauses)][:5000]
    if options.get("orderby"):
        items.sort(key=lambda m: (m.received, m.key), reverse=True)
    if options.get("changeType") and "created" not in options["changeType"]:
        items = []
    return [Entry(str(m.key), False, m.rest_id, m.immutable_id) for m in items]


def _message_changes(ctx: Ctx, folder: Folder, since: int, options: dict[str, Any]) -> list[Entry]:
    first: dict[int, ChangeKind] = {}
    last: dict[int, Any] = {}
    for entry in folder.log:
        if entry.seq <= since:
            continue
        first.setdefault(entry.key, entry.kind)
        last[entry.key] = entry
    replay = None
    if ctx.faults.delta_replay:
        for entry in reversed(folder.log):
            if entry.seq <= since and entry.key not in last and entry.key in folder.messages:
                replay = entry
                break
    if replay is not None:
        # Replay of a change the client already received in the previous round.
        first[replay.key] = ChangeKind.UPDATED
        last[replay.key] = replay
    kinds = set(options.get("changeType") or ("created", "updated", "deleted"))
    out = []
    for key, entry in sorted(last.items(), key=lambda kv: kv[1].seq):
        present = key in folder.messages
        if present:
            kind = "created" if first[key] is ChangeKind.CREATED else "updated"
        else:
            kind = "deleted"
        if kind not in kinds:
            continue
        out.append(Entry(str(key), not present, entry.rest_id, entry.immutable_id))
    return out


def _folder_initial(ctx: Ctx, mb: Mailbox) -> list[Entry]:
    root = ctx.world.folder(mb, "msgfolderroot")
    out = []
    for f in ctx.world.subtree(mb, root)[1:]:
        out.append(Entry(f.id, False))
    return out


def _folder_changes(ctx: Ctx, mb: Mailbox, since: int) -> list[Entry]:
    last: dict[str, int] = {}
    for entry in mb.folder_log:
        if entry.seq > since:
            last[entry.folder_id] = entry.seq
    out = []
    for fid, _ in sorted(last.items(), key=lambda kv: kv[1]):
        f = mb.folders.get(fid)
        present = f is not None and ctx.world.in_ipm_subtree(mb, f)
        out.append(Entry(fid, not present))
    return out
