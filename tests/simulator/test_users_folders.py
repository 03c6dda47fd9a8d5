"""Users (§5), error shapes (§3) and mail folders (§6) over HTTPS."""

from __future__ import annotations

from urllib.parse import quote

from .conftest import Graph


def _assert_error(r, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code
    inner = err["innerError"]
    assert inner["request-id"] == r.headers["request-id"]
    assert "date" in inner
    return err


def test_get_user_by_upn_mail_and_id(graph: Graph) -> None:
    alice = graph.t.alice
    for ref in (alice.upn, alice.id, alice.upn.upper()):
        r = graph.get(f"/users/{quote(ref)}")
        assert r.status_code == 200
        body = r.json()
        assert body["id"] == alice.id
        assert body["userPrincipalName"] == alice.upn
        assert body["mail"] == alice.mail
        assert "accountEnabled" not in body  # $select-only property
        assert body["businessPhones"] == []
    r = graph.get(f"/users/{alice.id}", params={"$select": "id,mail,accountEnabled,proxyAddresses"})
    assert r.json() == {
        "@odata.context": r.json()["@odata.context"],
        "id": alice.id,
        "mail": alice.mail,
        "accountEnabled": True,
        "proxyAddresses": [f"SMTP:{alice.mail}"],
    }
    shared = graph.get(f"/users/{graph.t.shared.id}", params={"$select": "accountEnabled"}).json()
    assert shared["accountEnabled"] is False


def test_users_filter_by_mail_and_proxy(graph: Graph) -> None:
    bob = graph.t.bob
    r = graph.get("/users", params={"$filter": f"mail eq '{bob.mail}'"})
    assert [u["id"] for u in r.json()["value"]] == [bob.id]
    r = graph.get("/users", params={"$filter": f"proxyAddresses/any(a:a eq 'smtp:{bob.mail}')"})
    assert [u["id"] for u in r.json()["value"]] == [bob.id]
    r = graph.get("/users", params={"$filter": "mail eq 'nobody@nowhere.example'"})
    assert r.json()["value"] == []


def test_user_errors(graph: Graph) -> None:
    t = graph.t
    _assert_error(graph.get("/users/ghost@nowhere.example"), 404, "Request_ResourceNotFound")
    err = _assert_error(
        graph.get("/users/ghost@nowhere.example/mailFolders"), 404, "ErrorInvalidUser"
    )
    assert err["message"] == "The requested user 'ghost@nowhere.example' is invalid."
    nomail = t.sim.add_user(t.tenant.id, f"nomail@{t.tenant.domain}", has_mailbox=False)
    _assert_error(graph.get(f"/users/{nomail.id}/messages"), 404, "MailboxNotEnabledForRESTAPI")
    err = _assert_error(graph.get("/me/messages"), 400, "BadRequest")
    assert err["message"] == "/me request is only valid with delegated authentication flow."
    # Users of another tenant are invisible.
    other = t.sim.add_tenant("other-tenant.example")
    stranger = t.sim.add_user(other.id, "stranger@other-tenant.example")
    _assert_error(graph.get(f"/users/{stranger.id}/messages"), 404, "ErrorInvalidUser")


def test_client_request_id_is_echoed(graph: Graph) -> None:
    r = graph.get(
        f"/users/{graph.t.alice.id}/mailFolders/nope", headers={"client-request-id": "abc-123"}
    )
    assert r.headers["client-request-id"] == "abc-123"
    assert r.json()["error"]["innerError"]["client-request-id"] == "abc-123"
    assert r.json()["error"]["code"] == "ErrorItemNotFound"


def test_top_level_folders_and_hidden(graph: Graph) -> None:
    mb = graph.mb(graph.t.alice)
    names = [f["displayName"] for f in graph.get(f"{mb}/mailFolders").json()["value"]]
    assert "Inbox" in names and "Sent Items" in names and "Deleted Items" in names
    assert "Sync Issues" not in names
    r = graph.get(f"{mb}/mailFolders", params={"includeHiddenFolders": "true", "$top": "100"})
    hidden = [f for f in r.json()["value"] if f["isHidden"]]
    assert [f["displayName"] for f in hidden] == ["Sync Issues"]
    root = graph.get(f"{mb}/mailFolders/msgfolderroot").json()
    for f in r.json()["value"]:
        assert f["parentFolderId"] == root["id"]
        assert set(f) == {
            "id",
            "displayName",
            "parentFolderId",
            "childFolderCount",
            "unreadItemCount",
            "totalItemCount",
            "isHidden",
        }
    kids = graph.get(
        f"{mb}/mailFolders/syncissues/childFolders", params={"includeHiddenFolders": "true"}
    ).json()["value"]
    assert sorted(k["displayName"] for k in kids) == [
        "Conflicts",
        "Local Failures",
        "Server Failures",
    ]
    # recoverableitemsdeletions is outside the IPM subtree but reachable by name.
    d = graph.get(f"{mb}/mailFolders/recoverableitemsdeletions").json()
    assert d["isHidden"] is True
    assert d["id"] not in {f["id"] for f in r.json()["value"]}


def test_well_known_names_case_insensitive(graph: Graph) -> None:
    mb = graph.mb(graph.t.alice)
    a = graph.get(f"{mb}/mailFolders/Inbox").json()
    b = graph.get(f"{mb}/mailFolders('inbox')").json()
    c = graph.get(f"{mb}/mailFolders/{quote(a['id'], safe='')}").json()
    assert a["id"] == b["id"] == c["id"]
    assert a["displayName"] == "Inbox"


def test_folder_paging_default_10(graph: Graph) -> None:
    mb = graph.mb(graph.t.alice)
    for i in range(12):
        assert (
            graph.post(
                f"{mb}/mailFolders/inbox/childFolders", json={"displayName": f"F{i:02}"}
            ).status_code
            == 201
        )
    first = graph.get(f"{mb}/mailFolders/inbox/childFolders").json()
    assert len(first["value"]) == 10
    assert "$skip=10" in first["@odata.nextLink"]
    second = graph.get(first["@odata.nextLink"]).json()
    assert len(second["value"]) == 2
    assert "@odata.nextLink" not in second
    names = [f["displayName"] for f in first["value"] + second["value"]]
    assert names == [f"F{i:02}" for i in range(12)]
    small = graph.get(f"{mb}/mailFolders/inbox/childFolders", params={"$top": "5"}).json()
    assert len(small["value"]) == 5 and "$top=5" in small["@odata.nextLink"]
    inbox = graph.get(f"{mb}/mailFolders/inbox").json()
    assert inbox["childFolderCount"] == 12


def test_create_rename_move_delete_folder(graph: Graph) -> None:
    t = graph.t
    mb = graph.mb(t.alice)
    r = graph.post(f"{mb}/mailFolders", json={"displayName": "Projects/2024"})
    assert r.status_code == 201
    fid = r.json()["id"]
    assert r.json()["displayName"] == "Projects/2024"
    dup = graph.post(f"{mb}/mailFolders", json={"displayName": "projects/2024"})
    _assert_error(dup, 409, "ErrorFolderExists")
    r = graph.patch(f"{mb}/mailFolders/{fid}", json={"displayName": "Renamed"})
    assert r.status_code == 200 and r.json()["displayName"] == "Renamed"
    child = graph.post(f"{mb}/mailFolders/{fid}/childFolders", json={"displayName": "Child"}).json()
    r = graph.post(f"{mb}/mailFolders/{child['id']}/move", json={"destinationId": "inbox"})
    assert r.status_code == 200
    assert r.json()["id"] == child["id"]
    assert r.json()["parentFolderId"] == graph.get(f"{mb}/mailFolders/inbox").json()["id"]
    # Deleting moves the folder (and its mail) to Deleted Items (§6.4).
    t.sim.deliver(t.alice, b"Subject: in folder\r\n\r\nbody\r\n", folder=fid)
    assert graph.delete(f"{mb}/mailFolders/{fid}").status_code == 204
    moved = graph.get(f"{mb}/mailFolders/{fid}").json()
    trash = graph.get(f"{mb}/mailFolders/deleteditems").json()
    assert moved["parentFolderId"] == trash["id"]
    assert moved["totalItemCount"] == 1
    # Deleting again from Deleted Items removes it.
    assert graph.delete(f"{mb}/mailFolders/{fid}").status_code == 204
    _assert_error(graph.get(f"{mb}/mailFolders/{fid}"), 404, "ErrorItemNotFound")


def test_well_known_folders_are_protected(graph: Graph) -> None:
    mb = graph.mb(graph.t.alice)
    assert graph.patch(f"{mb}/mailFolders/inbox", json={"displayName": "X"}).status_code == 400
    _assert_error(graph.delete(f"{mb}/mailFolders/inbox"), 400, "ErrorDeleteDistinguishedFolder")
    r = graph.post(f"{mb}/mailFolders/sentitems/move", json={"destinationId": "inbox"})
    _assert_error(r, 400, "ErrorMoveDistinguishedFolder")
    r = graph.patch(f"{mb}/mailFolders/inbox", json={"isHidden": True})
    assert r.status_code == 400


def test_search_folder_listed_with_odata_type(graph: Graph) -> None:
    t = graph.t
    mb = graph.mb(t.alice)
    sid = t.sim.create_search_folder(
        t.alice, "Weekly digests", "contains(subject, 'weekly digest')", parent="inbox"
    )
    t.sim.deliver(t.alice, b"Subject: Your weekly digest\r\n\r\nx\r\n")
    t.sim.deliver(t.alice, b"Subject: Other\r\n\r\nx\r\n")
    kids = graph.get(f"{mb}/mailFolders/inbox/childFolders").json()["value"]
    sf = next(k for k in kids if k["id"] == sid)
    assert sf["@odata.type"] == "#microsoft.graph.mailSearchFolder"
    assert sf["filterQuery"] == "contains(subject, 'weekly digest')"
    msgs = graph.get(f"{mb}/mailFolders/{sid}/messages").json()["value"]
    assert [m["subject"] for m in msgs] == ["Your weekly digest"]


def test_folder_delta(graph: Graph) -> None:
    t = graph.t
    mb = graph.mb(t.alice)
    pages, link = [], f"{mb}/mailFolders/delta"
    while True:
        body = graph.get(link).json()
        pages.append(body)
        if "@odata.deltaLink" in body:
            break
        link = body["@odata.nextLink"]
    assert len(pages) >= 2  # 13 folders in pages of 10
    seen = [f for p in pages for f in p["value"]]
    names = {f["displayName"] for f in seen}
    assert {"Inbox", "Conflicts", "Sync Issues"} <= names
    assert all(f["@odata.type"] == "#microsoft.graph.mailFolder" for f in seen)
    delta_link = pages[-1]["@odata.deltaLink"]
    new_id = t.sim.create_folder(t.alice, "Fresh", parent="inbox")
    doomed = t.sim.create_folder(t.alice, "Doomed")
    body = graph.get(delta_link).json()
    assert {f["id"] for f in body["value"]} == {new_id, doomed}
    delta_link = body["@odata.deltaLink"]
    t.sim.delete_folder(t.alice, doomed, permanent=True)
    t.sim.rename_folder(t.alice, new_id, "Fresher")
    body = graph.get(delta_link).json()
    by_id = {f["id"]: f for f in body["value"]}
    assert by_id[doomed]["@removed"] == {"reason": "deleted"}
    assert by_id[new_id]["displayName"] == "Fresher"


def test_access_policy_and_malformed_ids(graph: Graph) -> None:
    t = graph.t
    t.sim.set_access_policy(t.bob, t.app.client_id, allowed=False)
    err = _assert_error(graph.get(f"/users/{t.bob.id}/mailFolders"), 403, "ErrorAccessDenied")
    assert err["message"] == "Access to OData is disabled."
    assert graph.get(f"/users/{t.alice.id}/mailFolders").status_code == 200
    t.sim.set_access_policy(t.bob, t.app.client_id, allowed=True)
    assert graph.get(f"/users/{t.bob.id}/mailFolders").status_code == 200
    _assert_error(
        graph.get(f"/users/{t.alice.id}/messages/bad%20id!"), 400, "ErrorInvalidIdMalformed"
    )
    _assert_error(
        graph.get(f"/users/{t.alice.id}/messages/AAMkADunknown="), 404, "ErrorItemNotFound"
    )
