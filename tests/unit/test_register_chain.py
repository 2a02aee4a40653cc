"""The register's hash chain (Art. 40(9)): every change to history is detectable."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.register import (
    GENESIS_HASH,
    RegisterChainError,
    RegisterEntry,
    entry_time,
    next_entry,
    verify_chain,
)

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def chain(n: int) -> list[RegisterEntry]:
    entries: list[RegisterEntry] = []
    seq, head = 0, GENESIS_HASH
    for i in range(n):
        e = next_entry(
            seq,
            head,
            time=T0 + timedelta(seconds=i),
            event="received" if i % 2 else "submitted",
            direction="in" if i % 2 else "out",
            peer="NL-DU",
            message_id=f"00000000-0000-4000-8000-{i:012d}",
            message_type="take-charge-request",
            reference="BE1CASE-1",
            digest="ab" * 32,
            status="accepted",
        )
        entries.append(e)
        seq, head = e.sequence, e.hash
    return entries


def test_art40_9_intact_chain_verifies_to_its_head() -> None:
    entries = chain(10)
    assert verify_chain(entries) == (10, entries[-1].hash)


def test_art40_9_edited_entry_is_detected_at_its_sequence() -> None:
    entries = chain(5)
    entries[2] = dataclasses.replace(entries[2], peer="GR-DU")
    with pytest.raises(RegisterChainError) as err:
        verify_chain(entries)
    assert err.value.sequence == 3
    assert "edited" in err.value.reason


def test_art40_9_gap_is_detected() -> None:
    entries = chain(5)
    del entries[1]
    with pytest.raises(RegisterChainError) as err:
        verify_chain(entries)
    assert err.value.sequence == 2


def test_art40_9_relinked_forgery_breaks_the_next_link() -> None:
    entries = chain(4)
    forged = next_entry(
        1, entries[0].hash, time=T0, event="rejected", direction="in", reason="forged"
    )
    entries[1] = forged
    with pytest.raises(RegisterChainError) as err:
        verify_chain(entries)
    assert err.value.sequence == 3


def test_register_refuses_naive_times_and_unknown_events() -> None:
    with pytest.raises(ValueError, match="timezone"):
        next_entry(0, GENESIS_HASH, time=datetime(2026, 1, 1), event="received", direction="in")
    with pytest.raises(ValueError, match="event"):
        next_entry(0, GENESIS_HASH, time=T0, event="teleported", direction="in")


def test_canonical_encoding_is_independent_of_time_zone_of_the_instant() -> None:
    a = next_entry(0, GENESIS_HASH, time=T0, event="received", direction="in")
    b = next_entry(
        0,
        GENESIS_HASH,
        time=T0.astimezone(datetime.now().astimezone().tzinfo),
        event="received",
        direction="in",
    )
    assert a.hash == b.hash


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=1, max_value=12), st.data())
def test_art40_9_any_single_field_change_is_detected(n: int, data: st.DataObject) -> None:
    entries = chain(n)
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    field = data.draw(st.sampled_from(["peer", "reference", "digest", "status", "message_id"]))
    value = data.draw(st.text(min_size=1, max_size=8))
    if getattr(entries[i], field) == value:
        return
    entries[i] = dataclasses.replace(entries[i], **{field: value})
    with pytest.raises(RegisterChainError) as err:
        verify_chain(entries)
    assert err.value.sequence == i + 1


def test_art40_9_canonical_encoding_is_frozen() -> None:
    """Changing the encoding would make every existing register fail verification."""
    e = next_entry(
        0,
        GENESIS_HASH,
        time=datetime(2026, 11, 23, 9, 0, 0, 123456, tzinfo=UTC),
        event="received",
        direction="in",
        peer="NL-DU",
        message_id="11111111-1111-4111-8111-111111111111",
        message_type="take-charge-request",
        reference="BE1CASE-1",
        digest="ab" * 32,
        status="accepted",
        details={"é": 1},
    )
    assert e.canonical().decode() == (
        '{"details":{"é":1},"digest":"' + "ab" * 32 + '","direction":"in","event":"received",'
        '"message_id":"11111111-1111-4111-8111-111111111111","peer":"NL-DU","reason":null,'
        '"reference":"BE1CASE-1","seq":1,"status":"accepted",'
        '"time":"2026-11-23T09:00:00.123456Z","type":"take-charge-request"}'
    )
    assert e.hash == "f774e7a65aec03e8b9cd72dc333f3c3c515a2e9bc43788be05085a1a55d32648"


def test_the_register_has_one_field_list() -> None:
    """Issue 15, item 3: the entry, the table, the canonical form and the CSV export name the
    same fields in one place (ENTRY_FIELDS)."""
    import dataclasses

    from gateway.core.register import CANONICAL_KEYS, COLUMNS, RegisterEntry
    from gateway.service.audit import CSV_COLUMNS
    from gateway.store.schema import register

    assert tuple(f.name for f in dataclasses.fields(RegisterEntry)) == COLUMNS
    assert tuple(c.name for c in register.columns) == COLUMNS
    assert set(CANONICAL_KEYS) == {"seq", "type"} | set(COLUMNS[:13]) - {"sequence", "message_type"}
    assert CSV_COLUMNS == [*COLUMNS[:13], "hash", "receipt_time"]


def test_every_event_the_register_may_hold_is_a_member_of_the_vocabulary() -> None:
    from gateway.core.register import EVENTS, Event

    assert {e.value for e in Event} == EVENTS
    assert Event("deadline-expired") is Event.DEADLINE_EXPIRED


def test_one_chain_walk_serves_the_page_loop_the_worker_ranges_and_bundles() -> None:
    """Issue 15, item 3: one verifier. `run` moves through a page while every entry checks
    out and stops at an entry it must not judge alone (a content mismatch, which the caller
    re-checks with the reference encoding, or a sequence a checkpoint or witness fixes)."""
    from gateway.core.register import GENESIS_HASH, ChainWalk, Event, RegisterChainError

    entries, seq, head = [], 0, GENESIS_HASH
    for n in range(5):
        e = next_entry(seq, head, time=T0, event=Event.RECEIVED, direction="in", details={"n": n})
        entries.append(e)
        seq, head = e.sequence, e.hash
    rows = [(e.sequence, e.prev_hash, e.hash, e.canonical()) for e in entries]
    walk = ChainWalk()
    assert walk.run(rows, 0, {3}) == 2 and walk.sequence == 2
    walk.step(*rows[2])
    assert walk.run(rows, 3) == 5 and (walk.sequence, walk.head) == (5, head)
    edited = [*rows[:1], (2, rows[1][1], rows[1][2], b"{}"), *rows[2:]]
    walk = ChainWalk()
    assert walk.run(edited) == 1 and walk.sequence == 1
    with pytest.raises(RegisterChainError, match="edited"):
        walk.step(*edited[1])
    worker = ChainWalk(2, None)  # a range starting mid-chain takes its first link as given
    assert worker.run(rows[2:]) == 3 and worker.first_prev == rows[1][2]
    with pytest.raises(RegisterChainError, match="missing"):
        ChainWalk().run([rows[0], rows[2]])


def test_art40_9_register_time_never_goes_backwards_along_the_chain() -> None:
    """An entry appended after another never carries an earlier time (an auditor reads the
    register in sequence order); the event's own earlier time is kept in its details."""
    later = datetime(2026, 12, 5, 10, 0, 0, 5000, tzinfo=UTC)
    earlier = later - timedelta(milliseconds=3)
    assert entry_time(later, None, None) == (later, None)
    assert entry_time(later, earlier, {"a": 1}) == (later, {"a": 1})
    assert entry_time(later, later, None) == (later, None)
    moved, details = entry_time(earlier, later, {"a": 1})
    assert moved == later
    assert details == {"a": 1, "event_time": earlier.isoformat()}


def test_art40_9_the_receipt_time_an_entry_records_is_the_acknowledgements() -> None:
    """The legal time of receipt: for a transmission we received (or refused) the time our
    acknowledgement states, which is the entry's time unless the chain moved it; for one we
    sent, the time the receiver's acknowledgement states; none for other events."""
    from gateway.core.register import receipt_time

    at = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
    received = next_entry(
        0, GENESIS_HASH, time=at, event="received", direction="in", message_id="m"
    )
    assert receipt_time(received) == "2026-12-05T10:00:00.000000Z"
    moved = dataclasses.replace(received, details={"event_time": "2026-12-05T09:59:59+00:00"})
    assert receipt_time(moved) == "2026-12-05T09:59:59.000000Z"
    delivered = next_entry(
        0,
        GENESIS_HASH,
        time=at,
        event="delivered",
        direction="out",
        message_id="m",
        details={"receipt_time": "2026-12-05T09:58:00+00:00"},
    )
    assert receipt_time(delivered) == "2026-12-05T09:58:00.000000Z"
    assert receipt_time(dataclasses.replace(delivered, details={})) is None
    assert receipt_time(dataclasses.replace(delivered, details={"receipt_time": "x"})) is None
    assert receipt_time(dataclasses.replace(received, message_id=None)) is None
    submitted = next_entry(0, GENESIS_HASH, time=at, event="submitted", direction="out")
    assert receipt_time(submitted) is None


def test_art40_9_an_entry_moved_forward_keeps_when_its_event_occurred() -> None:
    from gateway.core.register import occurred_at

    at = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
    entry = next_entry(0, GENESIS_HASH, time=at, event="delivery-failed", direction="out")
    assert occurred_at(entry) == at
    earlier = at - timedelta(milliseconds=3)
    moved = dataclasses.replace(entry, details={"event_time": earlier.isoformat()})
    assert occurred_at(moved) == earlier
    assert occurred_at(dataclasses.replace(entry, details={"event_time": "nonsense"})) == at
