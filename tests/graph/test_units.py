"""Pure parts of bridge.graph: error parsing and sentences, JSON parsing, MIME
composition, clouds, credentials and the per-mailbox budget (with a fake clock)."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime

import pytest

from bridge.backend.remote import (
    DeltaTokenExpired,
    RemoteConflict,
    RemoteNotFound,
    RemotePermissionError,
    RemoteUnavailable,
)
from bridge.errors import ConfigError
from bridge.graph import AppCredentials, cloud_by_name
from bridge.graph.client import _MailboxGate, parse_retry_after, query, seg
from bridge.graph.compose import compose_for_append, split_large_mime
from bridge.graph.errors import (
    auth_error_sentence,
    graph_error,
    parse_graph_error,
    permission_sentence,
    token_roles,
)
from bridge.graph.model import ext_prop, message_from_json, parse_datetime, prop_key


def _jwt(claims: dict[str, object]) -> str:
    def enc(d: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")

    return f"{enc({'alg': 'RS256'})}.{enc(claims)}.signature"


def test_graph_error_inner_error_is_case_insensitive_and_nested() -> None:
    body = {
        "error": {
            "code": "ErrorItemNotFound",
            "message": "The specified object was not found in the store.",
            "innererror": {"request-id": "r-1", "innerError": {"code": "deeper"}},
        }
    }
    info = parse_graph_error(json.dumps(body).encode())
    assert info.code == "ErrorItemNotFound"
    assert info.request_id == "r-1"
    assert info.inner_code == "deeper"
    assert info.has_code("erroritemnotfound")
    assert parse_graph_error(b"<html>oops</html>").code is None


@pytest.mark.parametrize(
    ("status", "code", "message", "kind", "words"),
    [
        (404, "MailboxNotEnabledForRESTAPI", "inactive", RemoteNotFound, "on-premises"),
        (404, "Request_ResourceNotFound", "Resource 'x' does not exist", RemoteNotFound, "exist"),
        (404, "ErrorInvalidUser", "The requested user 'x' is invalid.", RemoteNotFound, "exist"),
        (403, "ErrorAccessDenied", "Access to OData is disabled.", RemotePermissionError, "policy"),
        (409, "ErrorFolderExists", "exists", RemoteConflict, "conflict"),
        (410, "SyncStateNotFound", "generation", DeltaTokenExpired, "resync"),
        (429, "ApplicationThrottled", "MailboxConcurrency", RemoteUnavailable, "retries after 2.5"),
    ],
)
def test_graph_errors_map_to_the_tree_with_a_sentence(
    status: int, code: str, message: str, kind: type, words: str
) -> None:
    info = parse_graph_error({"error": {"code": code, "message": message}})
    err = graph_error(status, info, mailbox="alice@contoso.com", retry_after=2.5)
    assert isinstance(err, kind)
    assert words in str(err)
    assert err.status == status


def test_missing_role_sentence_names_the_missing_permission() -> None:
    token = _jwt({"roles": ["Mail.ReadWrite", "User.Read.All"]})
    roles = token_roles(token)
    assert roles == {"Mail.ReadWrite", "User.Read.All"}
    sentence = permission_sentence(roles, ["Mail.Send"])
    assert sentence is not None and "Mail.Send" in sentence and "admin consent" in sentence
    no_roles = permission_sentence(token_roles(_jwt({"aud": "x"})), ["Mail.Send"])
    assert no_roles is not None and "admin consent has not been granted" in no_roles
    assert permission_sentence(roles, ["Mail.ReadWrite"]) is None


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (7000215, "not its Secret ID"),
        (7000222, "Certificates & secrets"),
        (700016, "consented"),
        (90002, "cloud"),
    ],
)
def test_aadsts_sentences(code: int, words: str) -> None:
    text = auth_error_sentence([code], "", tenant_id="t", client_id="c", cloud="global")
    assert words in text
    assert text.count(".") >= 1 and "\n" not in text


def test_message_parsing_is_defensive() -> None:
    data = {
        "id": "AAMk=",
        "@odata.etag": 'W/"CK1"',
        "parentFolderId": "F1",
        "receivedDateTime": "2024-01-02T03:04:05.1234567Z",
        "isRead": "true",
        "isDraft": False,
        "flag": {"flagStatus": "flagged"},
        "categories": ["a", 3],
        "singleValueExtendedProperties": [{"id": "Integer 0x1081", "value": "104"}],
    }
    msg = message_from_json(data)
    assert msg.change_key == "CK1"
    assert msg.is_read is True and msg.flagged is True
    assert msg.categories == ("a",)
    assert msg.last_verb == 104
    assert msg.received == datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert prop_key("Integer 0x0E08") == prop_key("integer 0xe08")
    assert (
        ext_prop(
            {"singleValueExtendedProperties": [{"id": "Integer 0xe08", "value": 1}]},
            "Integer 0x0E08",
        )
        == "1"
    )
    assert parse_datetime("garbage") is None


def test_query_and_segments_encode_what_must_be_encoded() -> None:
    assert seg("AA/b+c=") == "AA%2Fb%2Bc%3D"
    q = query({"$filter": "internetMessageId eq '<a&b@x>'", "includeHiddenFolders": True})
    assert q == "?$filter=internetMessageId%20eq%20'%3Ca%26b@x%3E'&includeHiddenFolders=true"
    assert parse_retry_after("2.128") == pytest.approx(2.128)
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", now=0.0) == pytest.approx(10.0)
    assert parse_retry_after(None) is None


def test_clouds_and_credentials() -> None:
    gov = cloud_by_name("gcc-high")
    assert gov.scope == "https://graph.microsoft.us/.default"
    assert cloud_by_name("dod").graph_url == "https://dod-graph.microsoft.us"
    assert cloud_by_name("china").login_url == "https://login.chinacloudapi.cn"
    with pytest.raises(ConfigError):
        cloud_by_name("custom", login_url="https://x")
    with pytest.raises(ConfigError):
        cloud_by_name("custom", login_url="http://x", graph_url="https://y")
    for alias in ("common", "organizations", "consumers"):
        with pytest.raises(ConfigError, match="GUID"):
            AppCredentials(alias, "client", client_secret="s")
    creds = AppCredentials("tenant", "client", client_secret="very-secret-value")
    assert "very-secret-value" not in repr(creds)


def test_compose_for_append_builds_a_non_draft_with_dates_and_attachments() -> None:
    mime = (
        b"From: Alice <alice@x.test>\r\nTo: bob@y.test\r\nCc: =?utf-8?q?J=C3=B6rg?= <j@y.test>\r\n"
        b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nDate: Tue, 02 Jan 2024 10:00:00 +0100\r\n"
        b"Message-ID: <m1@x.test>\r\nIn-Reply-To: <m0@x.test>\r\nX-Custom: yes\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
        b"--B\r\nContent-Type: multipart/alternative; boundary=A\r\n\r\n"
        b"--A\r\nContent-Type: text/plain\r\n\r\nplain\r\n"
        b"--A\r\nContent-Type: text/html\r\n\r\n<b>html</b>\r\n--A--\r\n"
        b"--B\r\nContent-Type: application/pdf; name=r.pdf\r\n"
        b"Content-Disposition: attachment; filename=r.pdf\r\nContent-Transfer-Encoding: base64\r\n"
        b"\r\nJVBERg==\r\n--B--\r\n"
    )
    composed = compose_for_append(
        mime,
        is_read=False,
        flagged=True,
        categories=("k",),
        last_verb=102,
        received=datetime(2024, 2, 3, 4, 5, 6, tzinfo=UTC),
        internet_message_id=None,
    )
    body = composed.body
    assert body["subject"] == "Grüße"
    assert body["body"] == {"contentType": "html", "content": "<b>html</b>"}
    assert body["ccRecipients"][0]["emailAddress"] == {"address": "j@y.test", "name": "Jörg"}
    assert body["internetMessageId"] == "<m1@x.test>"
    props = {p["id"]: p["value"] for p in body["singleValueExtendedProperties"]}
    assert props["Integer 0x0E07"] == "4"  # SUBMIT, not READ, never UNSENT
    assert props["SystemTime 0x0E06"] == "2024-02-03T04:05:06Z"
    assert props["SystemTime 0x0039"] == "2024-01-02T09:00:00Z"
    assert props["String 0x1042"] == "<m0@x.test>"
    assert props["Integer 0x1081"] == "102" and props["Integer 0x1080"] == "261"
    assert body["internetMessageHeaders"] == [{"name": "X-Custom", "value": "yes"}]
    assert [(a.name, a.data) for a in composed.attachments] == [("r.pdf", b"%PDF")]


def test_split_large_mime_moves_big_parts_out_and_keeps_the_rest() -> None:
    big = bytes(range(256)) * 20_000  # 5 MB
    mime = (
        b"From: a@x.test\r\nTo: b@y.test\r\nSubject: big\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n"
        b"\r\nhello\r\n--B\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Disposition: attachment; filename=big.bin\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(big)
        + b"\r\n--B\r\nContent-Type: text/plain; name=small.txt\r\n"
        b"Content-Disposition: attachment; filename=small.txt\r\n\r\nsmall\r\n--B--\r\n"
    )
    split = split_large_mime(mime)
    assert [a.name for a in split.removed] == ["big.bin"]
    assert split.removed[0].data == big
    assert b"small.txt" in split.mime and b"hello" in split.mime
    assert split.mime.startswith(b"From: a@x.test\r\nTo: b@y.test\r\n")
    assert split_large_mime(b"Subject: x\r\n\r\nbody").removed == ()


async def test_budget_waits_for_the_window_with_a_fake_clock() -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    gate = _MailboxGate(4, 20, 600.0, lambda: now[0], sleep)
    for _ in range(20):
        async with gate.slot(1):
            pass
    assert slept == []
    now[0] = 100.0
    async with gate.slot(5):  # a batch of 5 needs 5 units: wait for the first 5 to expire
        pass
    assert slept == [pytest.approx(500.0)]
    stats = gate.snapshot()
    assert stats.requests == 21 and stats.budget_used == 25 and stats.waits == 1


async def test_gate_caps_concurrency() -> None:
    gate = _MailboxGate(4, 10_000, 600.0, lambda: 0.0, asyncio.sleep)
    release = asyncio.Event()

    async def one() -> None:
        async with gate.slot(1):
            await release.wait()

    tasks = [asyncio.create_task(one()) for _ in range(10)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert gate.in_flight == 4
    release.set()
    await asyncio.gather(*tasks)
    assert gate.snapshot().max_in_flight == 4
