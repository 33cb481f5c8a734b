"""What is read from the bank: by the matcher as it restores and follows it (functions of one
connection, run with ``run_sync`` so a batch of reads shares it), and by the application and
the routes (one async function per need, given the engine)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from ncii_hashmatch import domain
from ncii_hashmatch.read_models.schema import (
    BANKS,
    CHANGES,
    ENTRIES,
    MATCHES,
    NEGATIVES,
    in_chunks,
)

# -- the matcher ---------------------------------------------------------------------------------


def settings_of(row: Any) -> domain.BankSettings:
    return domain.BankSettings(
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


async def feed_changes(engine: AsyncEngine, cursors: dict[str, int], limit: int) -> list[Any]:
    """The delta feed's page: additions and removals after the per-stream cursors."""
    async with engine.connect() as conn:
        return await conn.run_sync(changes_since, cursors, limit, ("add", "remove"))


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
