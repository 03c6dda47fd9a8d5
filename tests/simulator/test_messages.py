"""Messages: list, get, $value, create (JSON/MIME), update, move/copy/delete (§7-§12, §14, §17)."""

from __future__ import annotations

import base64
import datetime as dt
from typing import TYPE_CHECKING
from urllib.parse import quote

from .conftest import Graph

if TYPE_CHECKING:
    from tests.conftest import SimTenant

IMMUTABLE = {"Prefer": 'IdType="ImmutableId"'}


def mime(subject: str, *, date: str = "Mon, 01 Jan 2024 10:00:00 +0000", extra: str = "") -> bytes:
    return (
        f"From: Carol <carol@example.net>\r\nTo: someone@example.org\r\nSubject: {subject}\r\n"
        f"Date: {date}\r\nMessage-ID: <{subject.replace(' ', '.')}@example.net>\r\n{extra}"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"Body of {subject}\r\n"
    ).encode()


def seed(t: SimTenant, n: int) -> list[str]:
    base = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    return [
        t.sim.deliver(
            t.alice, mime(f"msg {i}"), received=base + dt.timedelta(hours=i), is_read=i % 2 == 0
        )
        for i in range(n)
    ]


def test_list_paging_select_and_order(graph: Graph) -> None:
    t = graph.t
    seed(t, 15)
    mb = graph.mb(t.alice)
    r = graph.get(f"{mb}/mailFolders/inbox/messages", params={"$select": "subject,isRead"})
    body = r.json()
    assert len(body["value"]) == 10
    first = body["value"][0]
    assert set(first) == {"@odata.etag", "id", "subject", "isRead"}
    assert first["subject"] == "msg 14"  # newest first by default
    assert "$skip=10" in body["@odata.nextLink"]
    nxt = graph.get(body["@odata.nextLink"]).json()
    assert [m["subject"] for m in nxt["value"]] == [f"msg {i}" for i in range(4, -1, -1)]
    asc = graph.get(
        f"{mb}/mailFolders/inbox/messages",
        params={"$orderby": "receivedDateTime asc", "$top": "3", "$select": "subject"},
    ).json()
    assert [m["subject"] for m in asc["value"]] == ["msg 0", "msg 1", "msg 2"]
    cnt = graph.get(
        f"{mb}/mailFolders/inbox/messages", params={"$count": "true", "$top": "1"}
    ).json()
    assert cnt["@odata.count"] == 15
    assert graph.get(f"{mb}/mailFolders/inbox/messages", params={"$top": "1001"}).status_code == 400


def test_filters(graph: Graph) -> None:
    t = graph.t
    seed(t, 6)
    mb = graph.mb(t.alice)
    unread = graph.get(
        f"{mb}/mailFolders/inbox/messages", params={"$filter": "isRead eq false"}
    ).json()
    assert sorted(m["subject"] for m in unread["value"]) == ["msg 1", "msg 3", "msg 5"]
    ranged = graph.get(
        f"{mb}/mailFolders/inbox/messages",
        params={
            "$filter": "receivedDateTime ge 2024-01-01T02:00:00Z"
            " and receivedDateTime lt 2024-01-01T04:00:00Z",
            "$orderby": "receivedDateTime desc",
        },
    ).json()
    assert [m["subject"] for m in ranged["value"]] == ["msg 3", "msg 2"]
    by_mid = graph.get(
        f"{mb}/mailFolders/inbox/messages",
        params={"$filter": "internetMessageId eq '<msg.4@example.net>'"},
    ).json()
    assert [m["subject"] for m in by_mid["value"]] == ["msg 4"]
    bad = graph.get(
        f"{mb}/mailFolders/inbox/messages",
        params={"$filter": "isRead eq false", "$orderby": "receivedDateTime desc"},
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "InefficientFilter"
    ok = graph.get(
        f"{mb}/mailFolders/inbox/messages",
        params={
            "$filter": "receivedDateTime ge 2024-01-01T00:00:00Z and isRead eq false",
            "$orderby": "receivedDateTime desc",
        },
    )
    assert ok.status_code == 200
    assert [m["subject"] for m in ok.json()["value"]] == ["msg 5", "msg 3", "msg 1"]


def test_get_message_and_value(graph: Graph) -> None:
    t = graph.t
    raw = mime("hello")
    mid = t.sim.deliver(t.alice, raw)
    mb = graph.mb(t.alice)
    r = graph.get(f"{mb}/messages/{quote(mid, safe='')}", headers=IMMUTABLE)
    m = r.json()
    assert m["id"] == mid
    assert m["@odata.etag"] == f'W/"{m["changeKey"]}"'
    assert m["subject"] == "hello"
    assert m["isDraft"] is False and m["isRead"] is False
    assert m["from"] == {"emailAddress": {"name": "Carol", "address": "carol@example.net"}}
    assert m["sentDateTime"] == "2024-01-01T10:00:00Z"
    assert m["body"]["contentType"] == "html"
    assert m["categories"] == [] and m["ccRecipients"] == []
    assert m["flag"] == {"flagStatus": "notFlagged"}
    assert "internetMessageHeaders" not in m
    hdrs = graph.get(f"{mb}/messages/{mid}", params={"$select": "internetMessageHeaders"}).json()
    assert {"name": "Subject", "value": "hello"} in hdrs["internetMessageHeaders"]
    text = graph.get(f"{mb}/messages/{mid}", headers={"Prefer": 'outlook.body-content-type="text"'})
    assert text.json()["body"] == {"contentType": "text", "content": "Body of hello\r\n"}
    assert text.headers["Preference-Applied"] == 'outlook.body-content-type="text"'
    v = graph.get(f"{mb}/messages/{mid}/$value")
    assert v.status_code == 200 and v.content == raw
    assert t.sim.mime(t.alice, mid) == raw
    # The folder-scoped path works too; a different folder does not.
    assert graph.get(f"{mb}/mailFolders/inbox/messages/{mid}").status_code == 200
    assert graph.get(f"{mb}/mailFolders/drafts/messages/{mid}").status_code == 404


def test_mime_create_is_always_a_draft(graph: Graph) -> None:
    t = graph.t
    mb = graph.mb(t.alice)
    raw = mime("uploaded")
    wrapped = base64.encodebytes(raw)  # 76-char lines are accepted
    r = graph.post(f"{mb}/messages", content=wrapped, headers={"Content-Type": "text/plain"})
    assert r.status_code == 201
    m = r.json()
    assert m["isDraft"] is True and m["isRead"] is True
    assert m["parentFolderId"] == graph.get(f"{mb}/mailFolders/drafts").json()["id"]
    assert m["sentDateTime"] == "2024-01-01T10:00:00Z"
    assert graph.get(f"{mb}/messages/{m['id']}/$value").content == raw
    r = graph.post(
        f"{mb}/messages", content=b"!!!not base64!!!", headers={"Content-Type": "text/plain"}
    )
    assert r.status_code == 400
    assert r.json()["error"] == {
        "code": "ErrorMimeContentInvalidBase64String",
        "message": "Invalid base64 string for MIME content.",
        "innerError": r.json()["error"]["innerError"],
    }
    r = graph.post(
        f"{mb}/mailFolders/inbox/messages",
        content=base64.b64encode(raw),
        headers={"Content-Type": "text/plain"},
    )
    assert r.status_code == 400
    # PATCHing the draft bit is refused, PidTagMessageFlags is a no-op.
    r = graph.patch(f"{mb}/messages/{m['id']}", json={"isDraft": False})
    assert r.status_code == 400
    r = graph.patch(
        f"{mb}/messages/{m['id']}",
        json={"singleValueExtendedProperties": [{"id": "Integer 0x0E07", "value": "1"}]},
    )
    assert r.status_code == 200 and r.json()["isDraft"] is True


def test_json_create_non_draft_with_dates(graph: Graph) -> None:
    t = graph.t
    mb = graph.mb(t.alice)
    body = {
        "subject": "appended",
        "body": {"contentType": "Text", "content": "hi"},
        "from": {"emailAddress": {"address": "x@example.net", "name": "X"}},
        "toRecipients": [{"emailAddress": {"address": t.alice.mail}}],
        "importance": "High",
        "internetMessageId": "<appended@example.net>",
        "singleValueExtendedProperties": [
            {"id": "Integer 0x0E07", "value": "4"},
            {"id": "SystemTime 0x0E06", "value": "2023-05-06T07:08:09Z"},
            {"id": "SystemTime 0x0039", "value": "2023-05-06T07:00:00Z"},
        ],
    }
    r = graph.post(f"{mb}/mailFolders/archive/messages", json=body)
    assert r.status_code == 201
    m = r.json()
    assert m["isDraft"] is False and m["isRead"] is False
    assert m["receivedDateTime"] == "2023-05-06T07:08:09Z"
    assert m["sentDateTime"] == "2023-05-06T07:00:00Z"
    assert m["importance"] == "high"
    assert m["internetMessageId"] == "<appended@example.net>"
    assert m["toRecipients"][0]["emailAddress"]["name"] == t.alice.mail
    # $value is regenerated by "Exchange": not what a client uploaded, but valid MIME.
    v = graph.get(f"{mb}/messages/{m['id']}/$value").content
    assert b"Subject: appended" in v and b"X-MS-Exchange-Organization-SCL" in v
    draft = graph.post(f"{mb}/messages", json={"subject": "d"}).json()
    assert draft["isDraft"] is True and draft["isRead"] is True
    bad = graph.post(f"{mb}/messages", json={"subject": "d", "isDraft": False})
    assert bad.status_code == 400
    unknown = graph.post(f"{mb}/messages", json={"subjectLine": "d"})
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "RequestBodyRead"
    hdr = graph.post(
        f"{mb}/messages", json={"internetMessageHeaders": [{"name": "Received", "value": "x"}]}
    )
    assert hdr.status_code == 400


def test_patch_flags_and_extended_properties(graph: Graph) -> None:
    t = graph.t
    mid = seed(t, 1)[0]
    mb = graph.mb(t.alice)
    before = graph.get(f"{mb}/messages/{mid}").json()
    r = graph.patch(
        f"{mb}/messages/{mid}",
        json={
            "isRead": True,
            "flag": {"flagStatus": "flagged"},
            "categories": ["Red category", "$label1"],
            "singleValueExtendedProperties": [
                {"id": "Integer 0x1081", "value": "102"},
                {"id": "Integer 0x1080", "value": "261"},
            ],
        },
    )
    assert r.status_code == 200
    after = r.json()
    assert "singleValueExtendedProperties" not in after  # §10.3
    assert after["isRead"] is True and after["flag"]["flagStatus"] == "flagged"
    assert after["categories"] == ["Red category", "$label1"]
    assert after["changeKey"] != before["changeKey"]
    assert after["@odata.etag"] != before["@odata.etag"]
    expand = (
        "singleValueExtendedProperties($filter=id eq 'Integer 0x1081'"
        " or id eq 'Integer 0x01080' or id eq 'Integer 0x0E08')"
    )
    got = graph.get(f"{mb}/messages/{mid}", params={"$select": "id", "$expand": expand}).json()
    props = {p["id"]: p["value"] for p in got["singleValueExtendedProperties"]}
    assert props["Integer 0x1081"] == "102"
    assert props["Integer 0x1080"] == "261"
    assert int(props["Integer 0xe08"]) > 0
    listed = graph.get(
        f"{mb}/mailFolders/inbox/messages",
        params={
            "$select": "id",
            "$expand": "singleValueExtendedProperties($filter=id eq 'Integer 0x1081')",
        },
    ).json()["value"]
    assert listed[0]["singleValueExtendedProperties"] == [{"id": "Integer 0x1081", "value": "102"}]
    # Draft-only properties cannot change on a received message.
    r = graph.patch(f"{mb}/messages/{mid}", json={"subject": "new"})
    assert r.status_code == 400
    r = graph.patch(f"{mb}/messages/{mid}", json={"flag": {"flagStatus": "weird"}})
    assert r.status_code == 400


def test_move_changes_rest_id_but_not_immutable_id(graph: Graph) -> None:
    t = graph.t
    seed(t, 1)
    mb = graph.mb(t.alice)
    rest = graph.get(f"{mb}/mailFolders/inbox/messages").json()["value"][0]
    imm = graph.get(f"{mb}/mailFolders/inbox/messages", headers=IMMUTABLE).json()["value"][0]
    assert rest["id"] != imm["id"]
    r = graph.post(f"{mb}/messages/{rest['id']}/move", json={"destinationId": "archive"})
    assert r.status_code == 201
    moved = r.json()
    assert moved["id"] != rest["id"]
    assert moved["parentFolderId"] == graph.get(f"{mb}/mailFolders/archive").json()["id"]
    gone = graph.get(f"{mb}/messages/{rest['id']}")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "ErrorItemNotFound"
    r = graph.post(
        f"{mb}/messages/{moved['id']}/move", json={"destinationId": "junkemail"}, headers=IMMUTABLE
    )
    assert r.json()["id"] == imm["id"]
    assert graph.get(f"{mb}/messages/{imm['id']}").status_code == 200
    copy = graph.post(
        f"{mb}/messages/{imm['id']}/copy", json={"destinationId": "inbox"}, headers=IMMUTABLE
    )
    assert copy.status_code == 201 and copy.json()["id"] != imm["id"]
    bad = graph.post(f"{mb}/messages/{imm['id']}/move", json={"destinationId": "AQMkADnope"})
    assert bad.status_code == 404


def test_delete_is_soft_and_permanent_delete_purges(graph: Graph) -> None:
    t = graph.t
    a, b = seed(t, 2)
    mb = graph.mb(t.alice)
    assert graph.delete(f"{mb}/messages/{a}").status_code == 204
    assert graph.get(f"{mb}/mailFolders/inbox").json()["totalItemCount"] == 1
    assert graph.get(f"{mb}/mailFolders/deleteditems").json()["totalItemCount"] == 0
    rid = graph.get(
        f"{mb}/mailFolders/recoverableitemsdeletions/messages", headers=IMMUTABLE
    ).json()
    assert [m["id"] for m in rid["value"]] == [a]
    all_msgs = graph.get(f"{mb}/messages", headers=IMMUTABLE).json()["value"]
    assert [m["id"] for m in all_msgs] == [b]
    assert graph.post(f"{mb}/messages/{b}/permanentDelete").status_code == 204
    assert graph.get(f"{mb}/messages/{b}").status_code == 404


def test_control_api_acts_like_outlook(graph: Graph) -> None:
    t = graph.t
    mid = seed(t, 1)[0]
    sim = t.sim
    sim.set_read(t.alice, mid, True)
    sim.set_flag(t.alice, mid, True)
    sim.set_categories(t.alice, mid, ["Blue"])
    m = sim.messages(t.alice)[0]
    assert m["id"] == mid and m["isRead"] is True and m["flag"]["flagStatus"] == "flagged"
    assert m["categories"] == ["Blue"]
    assert sim.move(t.alice, mid, "archive") == mid
    assert sim.messages(t.alice, "archive")[0]["id"] == mid
    sim.delete(t.alice, mid)
    assert sim.messages(t.alice, "archive") == []
    draft = graph.post(
        f"{graph.mb(t.alice)}/messages", json={"subject": "d"}, headers=IMMUTABLE
    ).json()
    sim.edit_draft(t.alice, draft["id"], subject="edited", body="new body")
    assert b"Subject: edited" in sim.mime(t.alice, draft["id"])
    folders = {f["wellKnownName"]: f for f in sim.folders(t.alice)}
    assert folders["recoverableitemsdeletions"]["totalItemCount"] == 1


def test_attachments_read_side_and_translate_ids(graph: Graph) -> None:
    t = graph.t
    raw = (
        b"From: a@example.net\r\nTo: b@example.org\r\nSubject: with file\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\n'
        b"Content-Type: text/plain\r\n\r\nsee attached\r\n--b1\r\n"
        b'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="r.pdf"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQ=\r\n--b1--\r\n"
    )
    mid = t.sim.deliver(t.alice, raw)
    mb = graph.mb(t.alice)
    m = graph.get(
        f"{mb}/messages/{mid}", params={"$select": "hasAttachments", "$expand": "attachments"}
    ).json()
    assert m["hasAttachments"] is True
    [att] = m["attachments"]
    assert att["@odata.type"] == "#microsoft.graph.fileAttachment"
    assert att["name"] == "r.pdf" and att["contentType"] == "application/pdf" and att["size"] == 8
    listed = graph.get(f"{mb}/messages/{mid}/attachments").json()["value"]
    assert [a["id"] for a in listed] == [att["id"]]
    one = graph.get(f"{mb}/messages/{mid}/attachments/{att['id']}").json()
    assert base64.b64decode(one["contentBytes"]) == b"%PDF-1.4"
    assert graph.get(f"{mb}/messages/{mid}/attachments/{att['id']}/$value").content == b"%PDF-1.4"
    rest = graph.get(f"{mb}/messages/{mid}", params={"$select": "id"}).json()["id"]
    r = graph.post(
        f"{mb}/translateExchangeIds",
        json={"inputIds": [rest], "sourceIdType": "restId", "targetIdType": "restImmutableEntryId"},
    )
    assert r.json()["value"] == [{"sourceId": rest, "targetId": mid}]


def test_unknown_segments_and_methods(graph: Graph) -> None:
    mb = graph.mb(graph.t.alice)
    r = graph.get(f"{mb}/calendars")
    assert r.status_code == 400 and r.json()["error"]["code"] == "BadRequest"
    assert graph.request("PUT", f"{mb}/mailFolders/inbox").status_code == 405
    root = graph.get(f"{mb}/mailFolders/msgfolderroot").json()
    assert graph.get(f"{mb}/mailFolders/{root['parentFolderId']}").status_code == 404
