"""What is read from the bank: by the matcher as it restores and follows it (functions of one
connection, run with ``run_sync`` so a batch of reads shares it), and by the application and
the routes (one async function per need, given the engine)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ncii_contracts.hashmatch import Programme
from sqlalchemy import ColumnElement, Connection, and_, func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from ncii_hashmatch import domain
from ncii_hashmatch.read_models.schema import (
    BANKS,
    CHANGES,
    ENTRIES,
    MATCHES,
    NEGATIVES,
    PLATFORM_PROGRAMMES,
    in_chunks,
)

# -- the matcher ---------------------------------------------------------------------------------


def settings_of(row: Any) -> domain.BankSettings:
    return domain.BankSettings(
        programme="child_protection" if row.programme == "child_protection" else "adults",
        enabled=bool(row.enabled),
        pdq_threshold=int(row.pdq_threshold),
        match_dihedral=bool(row.match_dihedral),
        vpdq_query_match_percent=int(row.vpdq_query_match_percent),
        vpdq_compared_match_percent=int(row.vpdq_compared_match_percent),
    )


def read_banks(conn: Connection) -> dict[str, domain.BankSettings]:
    return {r.name: settings_of(r) for r in conn.execute(select(BANKS))}


def cursors_now(conn: Connection) -> dict[str, int]:
    out = {"c": 0, "r": 0}
    for stream, top in conn.execute(
        select(CHANGES.c.stream, func.max(CHANGES.c.key)).group_by(CHANGES.c.stream)
    ):
        out[str(stream)] = int(top or 0)
    return out


def _after(cursors: dict[str, int]) -> ColumnElement[bool]:
    return or_(
        and_(CHANGES.c.stream == "c", CHANGES.c.key > cursors.get("c", 0)),
        and_(CHANGES.c.stream == "r", CHANGES.c.key > cursors.get("r", 0)),
    )


def changes_since(
    conn: Connection, cursors: dict[str, int], limit: int, kinds: Sequence[str] | None = None
) -> list[Any]:
    """Changes after the per-stream cursors, each stream in key order, with their entries."""
    query = (
        select(
            CHANGES.c.stream,
            CHANGES.c.key,
            CHANGES.c.kind,
            CHANGES.c.negative_id,
            CHANGES.c.at,
            ENTRIES.c.entry_id,
            ENTRIES.c.entry_key,
            ENTRIES.c.bank,
            ENTRIES.c.algorithm,
            ENTRIES.c.media,
            ENTRIES.c.value,
            ENTRIES.c.aliases,
            ENTRIES.c.frames,
            ENTRIES.c.live,
        )
        .select_from(CHANGES.outerjoin(ENTRIES, ENTRIES.c.entry_key == CHANGES.c.entry_key))
        .where(_after(cursors))
    )
    if kinds is not None:
        query = query.where(CHANGES.c.kind.in_(list(kinds)))
    query = query.order_by(CHANGES.c.stream, CHANGES.c.key).limit(limit)
    return list(conn.execute(query).all())


def count_changes_since(conn: Connection, cursors: dict[str, int]) -> int:
    query = select(func.count()).select_from(CHANGES).where(_after(cursors))
    return int(conn.execute(query).scalar_one())


def live_entries(conn: Connection, after_id: int, limit: int) -> list[tuple[Any, ...]]:
    """``(entry_id, algorithm, value, aliases, frames)`` of live entries after ``after_id``, as
    the driver returns them (a million rows load in about a second this way)."""
    result = conn.execute(
        select(
            ENTRIES.c.entry_id,
            ENTRIES.c.algorithm,
            ENTRIES.c.value,
            ENTRIES.c.aliases,
            ENTRIES.c.frames,
        )
        .where(ENTRIES.c.live.is_(True), ENTRIES.c.entry_id > after_id)
        .order_by(ENTRIES.c.entry_id)
        .limit(limit)
    )
    try:
        return [tuple(r) for r in result.cursor.fetchall()] if result.cursor else []
    finally:
        result.close()


def negatives(conn: Connection, negative_ids: Sequence[str] | None = None) -> list[Any]:
    query = select(NEGATIVES.c.neg_no, NEGATIVES.c.algorithm, NEGATIVES.c.value)
    if negative_ids is not None:
        query = query.where(NEGATIVES.c.negative_id.in_(list(negative_ids)))
    return list(conn.execute(query).all())


def entries_by_ids(conn: Connection, ids: Sequence[int]) -> dict[int, Any]:
    out: dict[int, Any] = {}
    for part in in_chunks(list(ids)):
        for r in conn.execute(
            select(
                ENTRIES.c.entry_id,
                ENTRIES.c.entry_key,
                ENTRIES.c.bank,
                ENTRIES.c.kind,
                ENTRIES.c.case_id,
                ENTRIES.c.algorithm,
                ENTRIES.c.value,
                ENTRIES.c.frames,
                ENTRIES.c.live,
            ).where(ENTRIES.c.entry_id.in_(list(part)))
        ):
            out[int(r.entry_id)] = r
    return out


# -- the application and the routes --------------------------------------------------------------


async def entry(engine: AsyncEngine, entry_key: str) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(select(ENTRIES).where(ENTRIES.c.entry_key == entry_key))).first()


async def match(engine: AsyncEngine, match_id: str) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(select(MATCHES).where(MATCHES.c.match_id == match_id))).first()


# -- the delta feed (decision 26) ------------------------------------------------------------------

FEED_KINDS = ("add", "remove")


@dataclass(frozen=True)
class FeedPosition:
    """Where a platform is in the feed. ``c`` and ``r``: every change up to these keys was
    given. ``window_end``: the cases' stream changes in ``(c, window_end]`` form the release
    window being read, in ``(mix, key)`` order, given up to ``(mix, key)``. Every number comes
    from the log, so a position is valid on every replica and after a rebuild."""

    c: int = 0
    r: int = 0
    window_end: int | None = None
    mix: int = -1
    key: int = -1

    def doc(self) -> dict[str, int]:
        out = {"c": self.c, "r": self.r}
        if self.window_end is not None:
            out |= {"ce": self.window_end, "m": self.mix, "k": self.key}
        return out

    @classmethod
    def of(cls, doc: dict[str, Any]) -> FeedPosition:
        """Raises KeyError, TypeError or ValueError for what this API did not return."""
        c, r = int(doc["c"]), int(doc["r"])
        if "ce" not in doc:
            return cls(c, r)
        return cls(c, r, int(doc["ce"]), int(doc["m"]), int(doc["k"]))


@dataclass(frozen=True)
class FeedPage:
    rows: list[Any]
    position: FeedPosition
    has_more: bool


def released_before(now: float, window_s: int) -> str:
    """The end of the last release window (``at`` text): case changes applied before it are
    released; ``window_s`` 0 releases everything applied so far."""
    if window_s > 0:
        now = now - now % window_s
    seconds = int(now)
    micros = int((now - seconds) * 1_000_000)  # truncated: never 1,000,000
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{micros:06d}Z"


def _feed_select(programmes: Sequence[Programme]) -> Any:
    """Feed rows of the banks of ``programmes`` only: a platform never sees (nor counts) the
    entries of a programme it is not subscribed to (decision 39)."""
    return (
        select(
            CHANGES.c.stream,
            CHANGES.c.key,
            CHANGES.c.kind,
            CHANGES.c.mix,
            ENTRIES.c.entry_key,
            ENTRIES.c.bank,
            ENTRIES.c.algorithm,
            ENTRIES.c.media,
            ENTRIES.c.value,
            ENTRIES.c.aliases,
            ENTRIES.c.listed,
        )
        .select_from(
            CHANGES.join(ENTRIES, ENTRIES.c.entry_key == CHANGES.c.entry_key).join(
                BANKS, BANKS.c.name == ENTRIES.c.bank
            )
        )
        .where(BANKS.c.programme.in_(list(programmes)))
    )


def _window_end(conn: Connection, after: int, released: str, cap: int) -> int | None:
    """The key that ends the next release window of the cases' stream: at most ``cap`` feed
    changes, all applied before ``released``; None when none is released yet."""
    first = (
        select(CHANGES.c.key)
        .where(
            CHANGES.c.stream == "c",
            CHANGES.c.key > after,
            CHANGES.c.kind.in_(FEED_KINDS),
            CHANGES.c.at < released,
        )
        .order_by(CHANGES.c.key)
        .limit(cap)
        .subquery()
    )
    end = conn.execute(select(func.max(first.c.key))).scalar()
    return None if end is None else int(end)


def feed_page(
    conn: Connection,
    at: FeedPosition,
    limit: int,
    released: str,
    window_cap: int,
    programmes: Sequence[Programme] = domain.PROGRAMMES,
) -> FeedPage:
    """A page of the delta feed after ``at``.

    Case changes are released in windows: everything applied before the last window boundary
    (``released``), at most ``window_cap`` changes, given in the order of their ``mix`` (a
    digest), so one submission's hashes or one case's removals are neither consecutive nor
    told apart from the other cases' changes of the window. Imported lists belong to no case:
    their changes follow in log order. Windows are the same for every platform; a page holds
    only the changes of ``programmes``' banks, so it may be shorter than ``limit`` (or empty)
    while ``has_more`` says to go on."""
    pos = at
    if pos.window_end is None:
        end = _window_end(conn, pos.c, released, window_cap)
        if end is not None:
            pos = FeedPosition(pos.c, pos.r, end)
    rows: list[Any] = []
    if pos.window_end is not None:
        top = conn.execute(select(func.max(CHANGES.c.key)).where(CHANGES.c.stream == "c")).scalar()
        if int(top or 0) < pos.window_end:
            return FeedPage([], at, False)  # a replica behind the window: ask again later
        window = list(
            conn.execute(
                _feed_select(programmes)
                .where(
                    CHANGES.c.stream == "c",
                    CHANGES.c.key > pos.c,
                    CHANGES.c.key <= pos.window_end,
                    CHANGES.c.kind.in_(FEED_KINDS),
                    or_(
                        CHANGES.c.mix > pos.mix,
                        and_(CHANGES.c.mix == pos.mix, CHANGES.c.key > pos.key),
                    ),
                )
                .order_by(CHANGES.c.mix, CHANGES.c.key)
                .limit(limit)
            ).all()
        )
        if len(window) == limit:
            last = window[-1]
            return FeedPage(window, replace(pos, mix=int(last.mix), key=int(last.key)), True)
        rows = window
        pos = FeedPosition(pos.window_end, pos.r)
    room = limit - len(rows)
    lists = list(
        conn.execute(
            _feed_select(programmes)
            .where(CHANGES.c.stream == "r", CHANGES.c.key > pos.r, CHANGES.c.kind.in_(FEED_KINDS))
            .order_by(CHANGES.c.key)
            .limit(room)
        ).all()
    )
    if lists:
        pos = replace(pos, r=int(lists[-1].key))
    more = len(lists) == room or _window_end(conn, pos.c, released, 1) is not None
    return FeedPage(rows + lists, pos, more)


async def feed(
    engine: AsyncEngine,
    at: FeedPosition,
    limit: int,
    released: str,
    window_cap: int,
    programmes: Sequence[Programme] = domain.PROGRAMMES,
) -> FeedPage:
    """The delta feed's page (``feed_page``), on one connection."""
    async with engine.connect() as conn:
        return await conn.run_sync(feed_page, at, limit, released, window_cap, programmes)


async def bank_programme(engine: AsyncEngine, name: str) -> Programme | None:
    """The programme a bank belongs to, or None when it does not exist (yet)."""
    async with engine.connect() as conn:
        row = (await conn.execute(select(BANKS.c.programme).where(BANKS.c.name == name))).first()
    if row is None:
        return None
    return "child_protection" if row.programme == "child_protection" else "adults"


async def platform_programmes(
    engine: AsyncEngine, platform: str
) -> tuple[tuple[Programme, ...], bool]:
    """The programmes a platform is subscribed to, and whether that was recorded (False: the
    default, ``domain.DEFAULT_PLATFORM_PROGRAMMES``)."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(PLATFORM_PROGRAMMES.c.programmes).where(
                    PLATFORM_PROGRAMMES.c.platform == platform
                )
            )
        ).first()
    if row is None:
        return domain.DEFAULT_PLATFORM_PROGRAMMES, False
    named = set(str(row.programmes).split(","))
    return tuple(p for p in domain.PROGRAMMES if p in named), True


async def banks(engine: AsyncEngine) -> list[dict[str, Any]]:
    """Every bank's row, by name, with ``live_hashes``."""
    async with engine.connect() as conn:
        counts: dict[str, int] = dict(
            (
                await conn.execute(
                    select(ENTRIES.c.bank, func.count())
                    .where(ENTRIES.c.live.is_(True))
                    .group_by(ENTRIES.c.bank)
                )
            ).all()
        )
        rows = (await conn.execute(select(BANKS).order_by(BANKS.c.name))).mappings().all()
    return [{**r, "live_hashes": int(counts.get(r["name"], 0))} for r in rows]


async def present_in_bank(engine: AsyncEngine, bank: str, pairs: Sequence[tuple[str, str]]) -> int:
    """How many of the ``(algorithm, value)`` pairs the bank holds live already."""
    count = 0
    async with engine.connect() as conn:
        for part in in_chunks(list(pairs)):
            count += int(
                (
                    await conn.execute(
                        select(func.count()).where(
                            ENTRIES.c.bank == bank,
                            ENTRIES.c.live.is_(True),
                            tuple_(ENTRIES.c.algorithm, ENTRIES.c.ident).in_(list(part)),
                        )
                    )
                ).scalar_one()
            )
    return count


async def not_exported(engine: AsyncEngine, bank: str) -> int | None:
    """How many live hashes of the bank its export leaves out (image MD5s and vPDQ: they have
    no signal type in python-threatexchange's format); None when there is no such bank."""
    async with engine.connect() as conn:
        exists = (await conn.execute(select(BANKS.c.name).where(BANKS.c.name == bank))).first()
        if exists is None:
            return None
        skipped = (
            await conn.execute(
                select(func.count()).where(
                    ENTRIES.c.bank == bank,
                    ENTRIES.c.live.is_(True),
                    (ENTRIES.c.algorithm == "vpdq")
                    | ((ENTRIES.c.algorithm == "md5") & (ENTRIES.c.media != "video")),
                )
            )
        ).scalar_one()
    return int(skipped)


async def export_pages(engine: AsyncEngine, bank: str, page: int) -> AsyncIterator[list[Any]]:
    """The bank's live entries (``algorithm``, ``media``, ``value``) in pages, in entry order;
    one connection per page, so a slow reader holds none."""
    after = 0
    while True:
        async with engine.connect() as conn:
            rows = list(
                (
                    await conn.execute(
                        select(
                            ENTRIES.c.entry_id,
                            ENTRIES.c.algorithm,
                            ENTRIES.c.media,
                            ENTRIES.c.value,
                        )
                        .where(
                            ENTRIES.c.bank == bank,
                            ENTRIES.c.live.is_(True),
                            ENTRIES.c.entry_id > after,
                        )
                        .order_by(ENTRIES.c.entry_id)
                        .limit(page)
                    )
                ).all()
            )
        if not rows:
            return
        yield rows
        after = int(rows[-1].entry_id)


async def open_false_positives(engine: AsyncEngine, limit: int, after: str | None) -> list[Any]:
    """Matches reported as false positives and not yet confirmed, by match id after ``after``."""
    query = (
        select(
            MATCHES,
            ENTRIES.c.bank,
            ENTRIES.c.algorithm,
            ENTRIES.c.kind,
            ENTRIES.c.value,
            ENTRIES.c.aliases,
            ENTRIES.c.frames,
        )
        .select_from(MATCHES.join(ENTRIES, ENTRIES.c.entry_key == MATCHES.c.entry_key))
        .where(MATCHES.c.verdict == "false_positive", MATCHES.c.fp_confirmed.is_(False))
    )
    if after is not None:
        query = query.where(MATCHES.c.match_id > after)
    async with engine.connect() as conn:
        return list((await conn.execute(query.order_by(MATCHES.c.match_id).limit(limit))).all())
