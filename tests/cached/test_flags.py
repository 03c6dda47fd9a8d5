"""The IMAP flag ↔ Graph state mapping and the keyword ↔ category encoding."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bridge.backend.flags import (
    RemoteFlagState,
    category_to_keyword,
    imap_flags,
    keyword_to_category,
    remote_target,
)

PLAIN = RemoteFlagState(is_read=False, flagged=False, is_draft=False, categories=(), last_verb=None)


def test_atom_categories_are_their_own_keyword() -> None:
    assert category_to_keyword("$Label1") == "$Label1"
    assert category_to_keyword("a/b") == "a/b"
    assert keyword_to_category("Urgent") == "Urgent"


def test_non_atom_categories_are_escaped_reversibly() -> None:
    assert category_to_keyword("Red category") == "Red~20category"
    assert category_to_keyword("Büro") == "B~C3~BCro"
    assert category_to_keyword("a~41") == "a~7E41"
    for name in ("Red category", "Büro", "a~41", "(x)", "\\Seen", "~", "%*"):
        assert keyword_to_category(category_to_keyword(name)) == name


@given(st.text(min_size=1, max_size=20))
def test_every_category_round_trips(name: str) -> None:
    keyword = category_to_keyword(name)
    assert all(0x20 < ord(ch) < 0x7F and ch not in '(){ %*"\\]' for ch in keyword)
    assert keyword_to_category(keyword) == name


def test_remote_state_to_flags() -> None:
    state = RemoteFlagState(True, True, True, ("Red category", "$Forwarded"), 102)
    assert imap_flags(state, deleted=True) == {
        "\\Seen",
        "\\Flagged",
        "\\Draft",
        "\\Answered",
        "\\Deleted",
        "$Forwarded",
        "Red~20category",
    }
    assert imap_flags(RemoteFlagState(False, False, False, (), 104)) == {"$Forwarded"}


def test_target_changes_only_what_differs() -> None:
    target = remote_target(PLAIN, frozenset({"\\Seen", "\\Deleted"}))
    assert target.is_read is True
    assert target.flagged is None and target.categories is None and target.last_verb is None
    assert target.deleted
    assert not remote_target(PLAIN, frozenset()).changes_remote


def test_draft_cannot_be_stored_and_verbs_map() -> None:
    target = remote_target(PLAIN, frozenset({"\\Draft"}))
    assert not target.changes_remote
    assert remote_target(PLAIN, frozenset({"\\Answered"})).last_verb == 102
    assert remote_target(PLAIN, frozenset({"$Forwarded"})).last_verb == 104
    both = remote_target(PLAIN, frozenset({"\\Answered", "$Forwarded"}))
    assert both.last_verb == 102 and both.categories == ("$Forwarded",)
    replied = RemoteFlagState(False, False, False, (), 103)
    assert remote_target(replied, frozenset({"\\Answered"})).last_verb is None
    assert remote_target(replied, frozenset()).last_verb == 0
    meeting = RemoteFlagState(False, False, False, (), 105)
    assert remote_target(meeting, frozenset()).last_verb is None


def test_keywords_become_categories() -> None:
    target = remote_target(PLAIN, frozenset({"Red~20category", "$Work"}))
    assert target.categories is not None
    assert sorted(target.categories) == ["$Work", "Red category"]
