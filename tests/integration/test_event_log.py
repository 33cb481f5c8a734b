"""The event store against a real NATS JetStream server, on each transport."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nats.aio.client import Client as NATS
from nats.errors import BadHeaderError
from nats.js.errors import APIError
from ncii_contracts.base import DomainEvent
from ncii_events.audit import verify_chain
from ncii_events.crypto import MasterKey
from ncii_events.embedded import EmbeddedNats
from ncii_events.envelope import Envelope, canonical_json
from ncii_events.keys import NatsCaseKeys
from ncii_events.registry import EventRegistry
from ncii_events.signing import SigningKey
from ncii_events.store import (
    NEW,
    AggregateRef,
    AppendError,
    ConcurrencyError,
    EventStore,
    RecordedEvent,
    Version,
)
from ncii_events.stream import CASES, REFERENCE, REFERENCE_CASE, ensure_streams
from ncii_events.transport import TRANSPORTS, TransportName, connect

from tests.conftest import SuiteNats
from tests.support.events import REGISTRY, NoteAdded, PoisonPill
from tests.support.eventually import eventually
from tests.support.factories import CAUSE, new_case, note_ref


@pytest.fixture(scope="module", params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> TransportName:
    """Every test here runs on each transport: stock nats-py and the fast client."""
    name: TransportName = request.param
    return name


@pytest.fixture(scope="module")
async def nc(nats_server: SuiteNats, transport: TransportName) -> AsyncIterator[NATS]:
    client = await connect(nats_server.url, name=f"tests-{transport}", transport=transport)
    await ensure_streams(client)
    yield client
    await client.close()


@pytest.fixture(scope="module")
async def case_keys(nc: NATS, master_key: MasterKey) -> AsyncIterator[NatsCaseKeys]:
    keys = NatsCaseKeys(nc, master_key)
    await keys.start()
    yield keys
    await keys.stop()


@pytest.fixture(scope="module")
async def store(nc: NATS, case_keys: NatsCaseKeys, test_signing: SigningKey) -> EventStore:
    return EventStore(nc, case_keys, registry=REGISTRY, signing=test_signing)


async def test_appended_events_read_back_identical_and_in_order(store: EventStore) -> None:
    case = new_case()
    first = await store.append(note_ref(case), [NoteAdded(text="one")], expected=NEW, cause=CAUSE)
    more = await store.append(
        note_ref(case),
        [NoteAdded(text="two"), NoteAdded(text="three")],
        expected=Version.of(first),
        cause=CAUSE,
    )
    loaded = await store.load(note_ref(case))
    assert [e.event.text for e in loaded if isinstance(e.event, NoteAdded)] == [
        "one",
        "two",
        "three",
    ]
    assert [e.seq for e in loaded] == [first[0].seq, more[0].seq, more[1].seq]
    assert [e.envelope for e in loaded] == [r.envelope for r in first + more]
    assert loaded[0].envelope.actor == CAUSE.actor
    assert loaded[0].envelope.correlation_id == "corr-test"


async def test_read_case_spans_aggregates_in_log_order(store: EventStore) -> None:
    case = new_case()
    a = await store.append(note_ref(case, "a"), [NoteAdded(text="a1")], expected=NEW, cause=CAUSE)
    b = await store.append(note_ref(case, "b"), [NoteAdded(text="b1")], expected=NEW, cause=CAUSE)
    a2 = await store.append(
        note_ref(case, "a"), [NoteAdded(text="a2")], expected=Version.of(a), cause=CAUSE
    )
    other = new_case()
    await store.append(note_ref(other), [NoteAdded(text="elsewhere")], expected=NEW, cause=CAUSE)
    events = await store.read_case(case)
    assert [e.seq for e in events] == [a[0].seq, b[0].seq, a2[0].seq]
    assert {e.case_id for e in events} == {case}


async def test_a_case_read_subject_by_subject_keeps_log_order_and_every_repeat(
    store: EventStore,
) -> None:
    """Several aggregates, each with repeated and distinct event types, interleaved: the read
    (one ``multi_last``, then each subject's earlier events) is the log's order, each event
    once, and ``up_to_seq`` cuts inside a subject's run."""
    case = new_case()
    written: list[RecordedEvent] = []
    versions = {"a": NEW, "b": NEW}
    for i, (note, event) in enumerate(
        [
            ("a", NoteAdded(text="a1")),
            ("b", NoteAdded(text="b1")),
            ("a", PoisonPill()),
            ("a", NoteAdded(text="a2")),
            ("b", PoisonPill()),
            ("a", NoteAdded(text="a3")),
            ("b", NoteAdded(text="b2")),
        ]
    ):
        done = await store.append(
            note_ref(case, note), [event], expected=versions[note], cause=CAUSE
        )
        versions[note] = Version.of(done)
        written.extend(done)
        assert len(written) == i + 1
    seqs = [e.seq for e in written]
    assert [e.seq for e in await store.read_case(case)] == seqs
    assert [e.seq for e in await store.load(note_ref(case, "a"))] == [
        seqs[0],
        seqs[2],
        seqs[3],
        seqs[5],
    ]
    assert [e.seq for e in await store.read_case(case, up_to_seq=seqs[4])] == seqs[:5]
    assert await store.load(note_ref(case, "nothing-here")) == []


async def test_a_case_with_more_subjects_than_one_multi_last_answer_is_read_in_batches(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ncii_events.store as store_module

    monkeypatch.setattr(store_module, "MULTI_LAST_BATCH", 3)
    case = new_case()
    seqs = []
    for note in ("a", "b", "c", "d", "e"):
        done = await store.append(
            note_ref(case, note), [NoteAdded(text=note)], expected=NEW, cause=CAUSE
        )
        seqs.append(done[0].seq)
    assert [e.seq for e in await store.read_case(case)] == seqs
    assert [e.seq for e in await store.read_case(case, up_to_seq=seqs[3])] == seqs[:4]


async def test_reading_an_aggregate_or_a_case_never_asks_for_a_wildcard_batch(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batched Direct Get with a wildcard ``next_by_subj`` makes the server scan the log from
    the start to count what is pending (decision 0053): reads of an aggregate or a case ask
    ``multi_last`` and literal subjects only, and a whole-stream read names no filter."""
    case = new_case()
    version = NEW
    for text in ("one", "two", "three"):
        version = Version.of(
            await store.append(
                note_ref(case), [NoteAdded(text=text)], expected=version, cause=CAUSE
            )
        )
    await store.append(note_ref(case, "b"), [PoisonPill()], expected=NEW, cause=CAUSE)
    transport = store._transport
    asked: list[dict[str, Any]] = []
    real = transport.direct_get

    async def spy(stream: str, request: bytes, *args: Any, **kwargs: Any) -> int:
        asked.append(json.loads(request))
        return await real(stream, request, *args, **kwargs)

    monkeypatch.setattr(transport, "direct_get", spy)
    assert len(await store.read_case(case)) == 4
    assert len(await store.load(note_ref(case))) == 3
    first = (await store.read_case(case))[0].seq
    assert (await store.get(first)) is not None
    assert await store.read_from(first, limit=2)
    batched_filters = [r["next_by_subj"] for r in asked if "batch" in r and "next_by_subj" in r]
    assert batched_filters, "the subjects' earlier events are read in batches"
    assert not [f for f in batched_filters if "*" in f or ">" in f]
    assert any("multi_last" in r for r in asked)


async def test_read_from_position_returns_the_following_events_of_every_case(
    store: EventStore,
) -> None:
    case = new_case()
    written = await store.append(
        note_ref(case), [NoteAdded(text=str(i)) for i in range(5)], expected=NEW, cause=CAUSE
    )
    tail = await store.read_from(written[2].seq, limit=3)
    assert [e.seq for e in tail] == [w.seq for w in written[2:]]


async def test_a_stale_writer_gets_a_concurrency_error_and_nothing_is_written(
    store: EventStore,
) -> None:
    case = new_case()
    base = await store.append(note_ref(case), [NoteAdded(text="base")], expected=NEW, cause=CAUSE)
    version = Version.of(base)
    results = await asyncio.gather(
        store.append(note_ref(case), [NoteAdded(text="w1")], expected=version, cause=CAUSE),
        store.append(note_ref(case), [NoteAdded(text="w2")], expected=version, cause=CAUSE),
        return_exceptions=True,
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], ConcurrencyError)
    loaded = await store.load(note_ref(case))
    assert len(loaded) == 2
    assert errors[0].actual == loaded[-1].seq


async def test_a_stale_batch_is_refused_whole(store: EventStore) -> None:
    case = new_case()
    base = await store.append(note_ref(case), [NoteAdded(text="base")], expected=NEW, cause=CAUSE)
    await store.append(
        note_ref(case), [NoteAdded(text="winner")], expected=Version.of(base), cause=CAUSE
    )
    with pytest.raises(ConcurrencyError):
        await store.append(
            note_ref(case),
            [NoteAdded(text="x"), NoteAdded(text="y"), NoteAdded(text="z")],
            expected=Version.of(base),
            cause=CAUSE,
        )
    assert [e.event.text for e in await store.load(note_ref(case))] == ["base", "winner"]  # type: ignore[union-attr]


async def test_an_event_is_refused_on_a_stream_its_contract_does_not_name(
    nc: NATS, test_signing: SigningKey
) -> None:
    reference = EventStore(nc, None, registry=REGISTRY, spec=REFERENCE, signing=test_signing)
    ref = AggregateRef(REFERENCE_CASE, "note", new_case())
    with pytest.raises(AppendError, match="not published on stream NCII_REF"):
        await reference.append(ref, [NoteAdded(text="x")], expected=NEW, cause=CAUSE)
    assert await reference.load(ref) == []


@pytest.mark.parametrize("count", [1, 3])
async def test_retrying_an_append_with_the_same_event_ids_writes_nothing_twice(
    store: EventStore, count: int
) -> None:
    case = new_case()
    events = [NoteAdded(text=f"n{i}") for i in range(count)]
    ids = [f"{case}-{i}" for i in range(count)]
    first = await store.append(note_ref(case), events, expected=NEW, cause=CAUSE, event_ids=ids)
    again = await store.append(note_ref(case), events, expected=NEW, cause=CAUSE, event_ids=ids)
    assert [e.seq for e in again] == [e.seq for e in first]
    assert len(await store.load(note_ref(case))) == count


@pytest.mark.parametrize("bad", ["id\r\nNats-Expected-Stream: x", " padded", "line\n"])
@pytest.mark.parametrize("count", [1, 3])
async def test_an_event_id_that_is_not_one_clean_header_line_is_refused_and_nothing_is_written(
    store: EventStore, bad: str, count: int
) -> None:
    case = new_case()
    events = [NoteAdded(text=f"n{i}") for i in range(count)]
    ids = [f"{case}-{i}" for i in range(count - 1)] + [bad]
    with pytest.raises((AppendError, BadHeaderError)):
        await store.append(note_ref(case), events, expected=NEW, cause=CAUSE, event_ids=ids)
    assert await store.load(note_ref(case)) == []


async def test_the_stream_refuses_delete_and_purge(nc: NATS, store: EventStore) -> None:
    case = new_case()
    written = await store.append(
        note_ref(case), [NoteAdded(text="keep")], expected=NEW, cause=CAUSE
    )
    js = nc.jetstream()
    with pytest.raises(APIError):
        await js.delete_msg(CASES.name, written[0].seq)
    with pytest.raises(APIError):
        await js.purge_stream(CASES.name)
    with pytest.raises(APIError):
        await js.purge_stream(CASES.name, subject=f"ncii.{case}.>")
    info = await js.stream_info(CASES.name)
    assert info.config.deny_delete and info.config.deny_purge
    assert info.config.max_age in (0, None)
    assert info.config.duplicate_window and info.config.duplicate_window >= 3600
    assert (await store.load(note_ref(case)))[0].seq == written[0].seq


class _RenamedV1(DomainEvent, aggregate="note", event_type="TestRenamed", version=1):
    name: str


async def test_a_read_of_the_whole_stream_names_no_subject_filter(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ncii.>`` selects every message of the stream, but as a filter the server walks the
    stream's subjects for it in every batch (decisions 0053 and 0054: ten times the cost or
    more at 1.3 million subjects); without one it reads the messages in order."""
    case = new_case()
    written = await store.append(note_ref(case), [NoteAdded(text="a")], expected=NEW, cause=CAUSE)
    sent: list[dict[str, Any]] = []
    transport = store._transport
    real = transport.direct_get

    async def recording(stream: str, request: bytes, on_stored: Any, timeout: float) -> int:
        sent.append(json.loads(request))
        return await real(stream, request, on_stored, timeout)

    monkeypatch.setattr(transport, "direct_get", recording)
    assert [e.seq for e in await store.read_from(written[0].seq, limit=1)] == [written[0].seq]
    assert [s for s, _ in await store.read_stored(written[0].seq, limit=1)] == [written[0].seq]
    assert len(sent) == 2 and not [r for r in sent if "next_by_subj" in r]


class _RenamedV2(DomainEvent, aggregate="note", event_type="TestRenamed", version=2):
    code_name: str
    age_group: str


async def test_a_read_up_to_a_position_leaves_out_what_was_appended_after_it(
    store: EventStore,
) -> None:
    """The server bounds a batched Direct Get by ``up_to_seq`` only with ``multi_last``: the
    store must, or a projection would apply events past the position it records."""
    case = new_case()
    written = await store.append(
        note_ref(case), [NoteAdded(text=str(i)) for i in range(5)], expected=NEW, cause=CAUSE
    )
    seqs = [e.seq for e in written]
    subject = store.spec.case_filter(case)
    read = await store.read_from(seqs[0], subject=subject, up_to_seq=seqs[2])
    assert [e.seq for e in read] == seqs[:3]
    assert [e.seq for e in await store.read_case(case, up_to_seq=seqs[1])] == seqs[:2]


async def test_a_v1_event_is_upcast_to_v2_on_read_and_stays_v1_in_the_log(
    nc: NATS, case_keys: NatsCaseKeys, test_signing: SigningKey
) -> None:
    old, new = EventRegistry(_RenamedV1), EventRegistry(_RenamedV2)

    @new.upcaster("TestRenamed", from_version=1)
    def _v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
        return {"code_name": payload["name"], "age_group": "unknown"}

    case = new_case()
    await EventStore(nc, case_keys, registry=old, signing=test_signing).append(
        note_ref(case), [_RenamedV1(name="Sparrow")], expected=NEW, cause=CAUSE
    )
    [read] = await EventStore(nc, case_keys, registry=new).load(note_ref(case))
    assert read.event == _RenamedV2(code_name="Sparrow", age_group="unknown")
    assert read.envelope.schema_version == 1
    assert read.envelope.verifies()


async def test_chain_verifies_and_names_the_first_altered_event(store: EventStore) -> None:
    case = new_case()
    written = await store.append(
        note_ref(case), [NoteAdded(text=str(i)) for i in range(4)], expected=NEW, cause=CAUSE
    )
    events = await store.read_case(case)
    assert verify_chain(events).ok and verify_chain(events).checked == 4

    doc = events[2].envelope.to_dict()
    doc["payload"] = {**doc["payload"], "text": "rewritten"}
    altered = [*events[:2], RecordedEvent(events[2].seq, Envelope.from_dict(doc), None), events[3]]
    report = verify_chain(altered)
    assert report.first_break is not None
    assert report.first_break.event_id == written[2].envelope.event_id
    assert "altered" in report.first_break.reason


async def test_a_forged_event_written_around_the_store_breaks_the_chain(
    nc: NATS, store: EventStore
) -> None:
    case = new_case()
    written = await store.append(
        note_ref(case), [NoteAdded(text="real")], expected=NEW, cause=CAUSE
    )
    forged = written[0].envelope.to_dict()
    forged.update(event_id="forged", payload={"text": "forged", "contact_phone": None})
    forged.pop("hash")
    forged.pop("signature")  # made from the hash, not covered by it (decision 23)
    from ncii_events.envelope import envelope_hash

    forged["prev_hash"] = "f" * 64  # the forger does not know how to link it
    forged["hash"] = envelope_hash(forged)
    await nc.jetstream().publish(f"ncii.{case}.note.n1.TestNoteAdded", canonical_json(forged))
    report = verify_chain(await store.read_case(case))
    assert report.first_break is not None and report.first_break.event_id == "forged"
    assert "link broken" in report.first_break.reason


async def test_personal_fields_are_encrypted_in_the_log(nc: NATS, store: EventStore) -> None:
    case = new_case()
    await store.append(
        note_ref(case),
        [NoteAdded(text="t", contact_phone="+886912345678")],
        expected=NEW,
        cause=CAUSE,
    )
    raw = await nc.jetstream().get_last_msg(CASES.name, f"ncii.{case}.note.n1.TestNoteAdded")
    assert raw.data is not None
    assert b"912345678" not in raw.data
    assert json.loads(raw.data)["payload"]["contact_phone"].startswith("enc:v1:")
    [read] = await store.load(note_ref(case))
    assert isinstance(read.event, NoteAdded) and read.event.contact_phone == "+886912345678"
    [sealed] = await store.load(note_ref(case), decrypt=False)
    assert isinstance(sealed.event, NoteAdded) and sealed.event.contact_phone is None
    assert sealed.withheld_fields == {"contact_phone"}


async def test_erasure_makes_personal_fields_unreadable_but_replay_and_chain_still_work(
    nc: NATS, store: EventStore, case_keys: NatsCaseKeys
) -> None:
    case = new_case()
    await store.append(
        note_ref(case),
        [NoteAdded(text="a", contact_phone="+886900000001"), NoteAdded(text="b")],
        expected=NEW,
        cause=CAUSE,
    )
    assert await case_keys.erase(case) is True
    assert await case_keys.erase(case) is False  # final, and idempotent
    events = await store.read_case(case)
    assert [e.event.text for e in events] == ["a", "b"]  # type: ignore[union-attr]
    assert isinstance(events[0].event, NoteAdded) and events[0].event.contact_phone is None
    assert events[0].erased_fields == {"contact_phone"}
    assert verify_chain(events).ok
    # another process (no cache) sees the same
    from ncii_events.keys import NatsCaseKeys as Keys

    fresh = EventStore(nc, Keys(nc, case_keys._master), registry=REGISTRY)
    assert (await fresh.read_case(case))[0].erased_fields == {"contact_phone"}
    # and nobody can write new personal data for an erased case
    from ncii_events.crypto import CaseErasedError

    with pytest.raises(CaseErasedError):
        await store.append(
            note_ref(case, "n2"),
            [NoteAdded(text="c", contact_phone="x")],
            expected=NEW,
            cause=CAUSE,
        )


async def test_an_erased_key_is_overwritten_in_the_key_bucket(
    nc: NATS, store: EventStore, case_keys: NatsCaseKeys
) -> None:
    case = new_case()
    await store.append(
        note_ref(case), [NoteAdded(text="a", contact_phone="p")], expected=NEW, cause=CAUSE
    )
    kv = await nc.jetstream().key_value("ncii_case_keys")
    before = await kv.get(case)
    await case_keys.erase(case)
    history = await kv.history(case)
    assert all(b'"wrapped"' not in (h.value or b"") for h in history)
    assert before.revision not in {h.revision for h in history}


@pytest.mark.parametrize("bad", ["", "a.b", "*", ">", "a b", "a\r\nPUB x 1"])
async def test_an_id_that_is_not_one_subject_token_is_refused_before_reaching_the_log(
    store: EventStore, bad: str
) -> None:
    with pytest.raises(ValueError, match="single subject token"):
        AggregateRef(bad, "note", "n1")
    with pytest.raises(ValueError, match="single subject token"):
        AggregateRef(new_case(), "note", bad)
    with pytest.raises(ValueError, match="single subject token"):
        await store.read_case(bad)


async def test_a_batched_read_of_more_than_one_request_returns_every_event_in_order(
    store: EventStore,
) -> None:
    case = new_case()
    version = NEW
    for start in range(0, 2500, 500):
        events = [NoteAdded(text=f"n{i}") for i in range(start, start + 500)]
        version = Version.of(
            await store.append(note_ref(case), events, expected=version, cause=CAUSE)
        )
    read = await store.read_case(case)
    assert [e.event.text for e in read if isinstance(e.event, NoteAdded)] == [
        f"n{i}" for i in range(2500)
    ]
    assert [e.seq for e in read] == sorted(e.seq for e in read)


async def test_appends_and_reads_go_on_after_the_server_restarts(
    tmp_path_factory: pytest.TempPathFactory, transport: TransportName, test_signing: SigningKey
) -> None:
    """The store's replies come through one reply subscription (on the fast transport, a direct
    one and its own parser): nats-py must still renew that subscription, and the parser start
    clean, after a reconnection."""
    from ncii_events.embedded import free_port

    data = tmp_path_factory.mktemp("nats-restart")
    server = EmbeddedNats(data, port=free_port(), monitor_port=free_port(), sync_always=False)
    server.start()
    client = await connect(server.url, name="restart-test", transport=transport)
    try:
        await ensure_streams(client)
        restarting = EventStore(client, None, registry=REGISTRY, signing=test_signing)
        case = new_case()
        first = await restarting.append(
            note_ref(case), [NoteAdded(text="before")], expected=NEW, cause=CAUSE
        )
        server.stop()
        server.start()
        # The client notices, and reconnects on its own (every second).
        await eventually(
            lambda: client.stats["reconnects"] >= 1 and client.is_connected, what="a reconnect"
        )
        second = await restarting.append(
            note_ref(case), [NoteAdded(text="after")], expected=Version.of(first), cause=CAUSE
        )
        texts = [e.event.text for e in await restarting.read_case(case)]
        assert texts == ["before", "after"]
        assert second[0].seq > first[0].seq
    finally:
        await client.close()
        server.stop()


async def test_a_reader_of_case_keys_never_creates_one_and_drops_an_erased_one_at_once(
    nats_server: SuiteNats, store: EventStore, case_keys: NatsCaseKeys
) -> None:
    from ncii_events.crypto import CaseErasedError
    from ncii_events.keys import CaseKeyMissingError

    case = new_case()
    await store.append(
        note_ref(case), [NoteAdded(text="a", contact_phone="p")], expected=NEW, cause=CAUSE
    )
    other = await connect(nats_server.url, name="tests-key-reader")
    reader = NatsCaseKeys(other, case_keys._master, writer=False)  # another service's process
    await reader.start()
    try:
        assert await reader.key_for_write(case) == await case_keys.key_for_read(case)
        with pytest.raises(CaseKeyMissingError):
            await reader.key_for_write(new_case())  # only the owner of cases makes keys
        with pytest.raises(PermissionError):
            await reader.erase(case)
        await case_keys.erase(case)

        async def dropped() -> bool:
            return await reader.key_for_read(case) is None  # its cached key is gone

        await eventually(dropped, what="the erasure reaching the reader's cache")
        with pytest.raises(CaseErasedError):
            await reader.key_for_write(case)
    finally:
        await reader.stop()
        await other.close()
