"""Per-folder message delta (§16)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .conftest import Graph
from .test_messages import IMMUTABLE, mime

if TYPE_CHECKING:
    from tests.conftest import SimTenant


def run_round(
    graph: Graph, link: str, headers: dict[str, str] | None = None
) -> tuple[list[dict[str, Any]], str, int]:
    items: list[dict[str, Any]] = []
    pages = 0
    while True:
        r = graph.get(link, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        pages += 1
        items.extend(body["value"])
        if "@odata.deltaLink" in body:
            return items, body["@odata.deltaLink"], pages
        assert "$skiptoken=" in body["@odata.nextLink"]
        link = body["@odata.nextLink"]


def seed(t: SimTenant, n: int) -> list[str]:
    return [t.sim.deliver(t.alice, mime(f"d{i}")) for i in range(n)]


def test_initial_round_then_incremental(graph: Graph) -> None:
    t = graph.t
    ids = seed(t, 25)
    start = f"{graph.mb(t.alice)}/mailFolders/inbox/messages/delta?$select=subject,isRead"
    items, delta_link, pages = run_round(graph, start, IMMUTABLE)
    assert pages == 3  # default page size 10
    assert sorted(i["id"] for i in items) == sorted(ids)
    assert all(set(i) == {"@odata.type", "@odata.etag", "id", "subject", "isRead"} for i in items)
    assert "$deltatoken=" in delta_link
    # Nothing changed → empty round.
    items, delta_link, _ = run_round(graph, delta_link, IMMUTABLE)
    assert items == []
    new = t.sim.deliver(t.alice, mime("fresh"))
    t.sim.set_read(t.alice, ids[0], True)
    t.sim.move(t.alice, ids[1], "archive")
    t.sim.delete(t.alice, ids[2])
    items, delta_link, _ = run_round(graph, delta_link, IMMUTABLE)
    by_id = {i["id"]: i for i in items}
    assert by_id[new]["subject"] == "fresh"
    assert by_id[ids[0]]["isRead"] is True
    assert set(by_id[ids[0]]) == {
        "@odata.type",
        "@odata.etag",
        "id",
        "subject",
        "isRead",
    }  # $select kept
    assert by_id[ids[1]]["@removed"] == {"reason": "deleted"}
    assert by_id[ids[2]]["@removed"] == {"reason": "deleted"}
    # The moved message shows up as new in the destination's delta.
    archive, _, _ = run_round(
        graph, f"{graph.mb(t.alice)}/mailFolders/archive/messages/delta", IMMUTABLE
    )
    assert [i["id"] for i in archive] == [ids[1]]


def test_maxpagesize_and_rest_ids_in_removed(graph: Graph) -> None:
    t = graph.t
    seed(t, 5)
    start = f"{graph.mb(t.alice)}/mailFolders/inbox/messages/delta"
    items, delta_link, pages = run_round(graph, start, {"Prefer": "odata.maxpagesize=2"})
    assert pages == 3
    rest_id = items[0]["id"]
    graph.post(f"{graph.mb(t.alice)}/messages/{rest_id}/move", json={"destinationId": "archive"})
    items, _, _ = run_round(graph, delta_link)
    assert items == [
        {
            "@odata.type": "#microsoft.graph.message",
            "id": rest_id,
            "@removed": {"reason": "deleted"},
        }
    ]


def test_change_type_option(graph: Graph) -> None:
    t = graph.t
    ids = seed(t, 3)
    start = f"{graph.mb(t.alice)}/mailFolders/inbox/messages/delta?changeType=deleted"
    items, delta_link, _ = run_round(graph, start, IMMUTABLE)
    assert items == []
    t.sim.deliver(t.alice, mime("new"))
    t.sim.set_read(t.alice, ids[0], True)
    t.sim.delete(t.alice, ids[1])
    items, _, _ = run_round(graph, delta_link, IMMUTABLE)
    assert [(i["id"], "@removed" in i) for i in items] == [(ids[1], True)]


def test_replays(graph: Graph) -> None:
    t = graph.t
    ids = seed(t, 4)
    t.sim.faults.delta_replay = True
    start = f"{graph.mb(t.alice)}/mailFolders/inbox/messages/delta"
    items, delta_link, _ = run_round(
        graph, start, {**IMMUTABLE, "Prefer": 'IdType="ImmutableId", odata.maxpagesize=2'}
    )
    got = [i["id"] for i in items]
    assert len(got) == 5 and sorted(set(got)) == sorted(ids)  # one entry appeared twice
    t.sim.set_flag(t.alice, ids[3], True)
    items, _, _ = run_round(graph, delta_link, IMMUTABLE)
    # The flag change, plus a replay of a change the client had already seen.
    assert ids[3] in [i["id"] for i in items] and len(items) == 2


def test_trailing_empty_page(graph: Graph) -> None:
    t = graph.t
    seed(t, 2)
    t.sim.faults.delta_trailing_empty_page = True
    start = f"{graph.mb(t.alice)}/mailFolders/inbox/messages/delta"
    items, _, pages = run_round(graph, start)
    assert len(items) == 2 and pages == 2


def test_expired_tokens_are_410(graph: Graph) -> None:
    t = graph.t
    seed(t, 12)
    mb = graph.mb(t.alice)
    first = graph.get(f"{mb}/mailFolders/inbox/messages/delta").json()
    next_link = first["@odata.nextLink"]
    t.sim.expire_delta_tokens(t.alice, "inbox")
    r = graph.get(next_link)
    assert r.status_code == 410
    err = r.json()["error"]
    assert err["code"] == "SyncStateNotFound"
    assert err["message"].startswith("The sync state generation is not found; generation=")
    assert "Location" in r.headers
    _, delta_link, _ = run_round(graph, f"{mb}/mailFolders/inbox/messages/delta")
    t.sim.expire_delta_tokens(t.alice)
    assert graph.get(delta_link).status_code == 410
    tampered = delta_link[:-3] + ("AAA" if not delta_link.endswith("AAA") else "BBB")
    assert graph.get(tampered).status_code == 410


def test_bounded_log_evicts_generations(graph: Graph) -> None:
    t = graph.t
    world = t.sim.world
    mid = seed(t, 1)[0]
    _, delta_link, _ = run_round(graph, f"{graph.mb(t.alice)}/mailFolders/inbox/messages/delta")
    old_limit = world.delta_log_limit
    world.delta_log_limit = 3
    try:
        for _ in range(5):
            t.sim.set_read(t.alice, mid, True)
    finally:
        world.delta_log_limit = old_limit
    r = graph.get(delta_link)
    assert r.status_code == 410 and r.json()["error"]["code"] == "SyncStateNotFound"


def test_deleted_folder_is_404_sync_folder_not_found(graph: Graph) -> None:
    t = graph.t
    fid = t.sim.create_folder(t.alice, "Temp")
    _, delta_link, _ = run_round(graph, f"{graph.mb(t.alice)}/mailFolders/{fid}/messages/delta")
    t.sim.delete_folder(t.alice, fid, permanent=True)
    r = graph.get(delta_link)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "ErrorSyncFolderNotFound"


def test_delta_filter_and_orderby_rules(graph: Graph) -> None:
    t = graph.t
    seed(t, 2)
    mb = graph.mb(t.alice)
    ok = graph.get(
        f"{mb}/mailFolders/inbox/messages/delta",
        params={
            "$filter": "receivedDateTime ge 2000-01-01T00:00:00Z",
            "$orderby": "receivedDateTime desc",
        },
    )
    assert ok.status_code == 200 and len(ok.json()["value"]) == 2
    bad = graph.get(f"{mb}/mailFolders/inbox/messages/delta", params={"$filter": "isRead eq false"})
    assert bad.status_code == 400
