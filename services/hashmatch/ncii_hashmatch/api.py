"""Hashmatch's HTTP API.

Platforms (role ``platform``) look up hashes, report sightings, read the delta feed of the hash
list and give feedback on matches. They see hashes, distances, opaque bank ids and opaque match
ids: never a case, an organisation or anything personal. Case workers and admins configure
banks, import and export lists in python-threatexchange's plain format, and confirm false
positives into the negative bank.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from ncii_events.auth import Principal, require_role
from ncii_events.http import Problem, decode_cursor, encode_cursor, not_found, request_fingerprint
from ncii_events.service import app_of, authenticated, runtime_of
from pydantic import BaseModel
from sqlalchemy import func, select

from ncii_hashmatch import domain, projections
from ncii_hashmatch.app import HashmatchApp
from ncii_hashmatch.commands import (
    BankSettingsIn,
    ConfirmFalsePositive,
    Feedback,
    Lookup,
    Sighting,
    utc_text,
)
from ncii_hashmatch.handlers import NoMatchError, NotFoundError
from ncii_hashmatch.matcher import Hit

log = logging.getLogger("ncii.hashmatch.api")
router = APIRouter(prefix="/v1")
Caller = Annotated[Principal, Depends(authenticated)]
App = Annotated[HashmatchApp, Depends(app_of(HashmatchApp))]
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", description="retrying with the same key is a no-op"),
]
BankName = Annotated[str, Path(max_length=64, description="e.g. STOPNCII_2026 or ORG_...")]
PLATFORMS = ("platform",)
BANK_STAFF = ("caseworker", "admin")
MAX_IMPORT_BYTES = 96 * 1024 * 1024
EXPORT_PAGE = 20_000


# -- responses -------------------------------------------------------------------------------------


class MatchOut(BaseModel):
    match_id: str
    bank: str
    algorithm: str
    distance: int
    rotated: bool = False
    query_match_percent: float | None = None
    compared_match_percent: float | None = None


class ItemResult(BaseModel):
    index: int
    matches: list[MatchOut]
    skipped: str | None = None
    """Why an item was not searched (a PDQ hash below quality 50)."""


class LookupResult(BaseModel):
    items: list[ItemResult]


class Change(BaseModel):
    change: Literal["add", "remove"]
    id: str
    """This entry's id for you (the same as the match id you get when it matches)."""
    bank: str
    algorithm: str
    media: str
    value: str
    dihedral: list[str] | None = None


class ChangePage(BaseModel):
    items: list[Change]
    next_cursor: str
    has_more: bool


class BankOut(BaseModel):
    name: str
    public_id: str
    kind: str
    enabled: bool
    pdq_threshold: int
    match_dihedral: bool
    vpdq_query_match_percent: int
    vpdq_compared_match_percent: int
    live_hashes: int
    updated_at: str


class BankList(BaseModel):
    items: list[BankOut]


def _match_out(state: HashmatchApp, principal: Principal, hit: Hit) -> MatchOut:
    return MatchOut(
        match_id=state.tokens.match_id(principal.organisation, hit.entry_key),
        bank=state.tokens.bank_id(hit.bank),
        algorithm=hit.algorithm,
        distance=hit.distance,
        rotated=hit.rotated,
        query_match_percent=_round(hit.query_match_percent),
        compared_match_percent=_round(hit.compared_match_percent),
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# -- the platform exchange -------------------------------------------------------------------------


@router.post("/lookups", tags=["platforms"])
async def lookup(request: Request, state: App, body: Lookup, principal: Caller) -> LookupResult:
    """Look up a batch of up to 1,000 hashes. Each match has its distance, an opaque bank id
    and an opaque match id (for a sighting or feedback). A PDQ item may carry the 8 rotations
    and flips of the image (`ncii hash --dihedral`) to catch rotated or flipped copies even in
    banks that hold no rotations. Look-ups are reads: nothing is recorded but a count."""
    require_role(principal, *PLATFORMS)
    t0 = time.perf_counter()
    results = await state.matcher.lookup([item.query() for item in body.items])
    matched = sum(1 for r in results if r)
    log.info(
        "lookup: %d items, %d matched, %.1f ms",
        len(body.items),
        matched,
        1000 * (time.perf_counter() - t0),
    )
    return LookupResult(
        items=[
            ItemResult(
                index=i,
                matches=[_match_out(state, principal, h) for h in hits],
                skipped="low_quality" if item.low_quality else None,
            )
            for (i, hits), item in zip(enumerate(results), body.items, strict=True)
        ]
    )


@router.post("/sightings", status_code=201, tags=["platforms"])
async def report_sighting(
    request: Request,
    state: App,
    body: Sighting,
    principal: Caller,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Report where you saw content matching the bank. The hash must match now; each matched
    victim's case records `MatchFound` (with the URL, encrypted) so takedown can act. The same
    sighting reported twice is recorded once."""
    require_role(principal, *PLATFORMS)
    runtime = runtime_of(request)

    async def handle() -> tuple[int, dict[str, Any]]:
        try:
            sighting_id, recorded = await state.handlers.report_sighting(
                principal, body.hash.query(), body.url, utc_text(body.seen_at)
            )
        except NoMatchError:
            raise Problem(
                422,
                "No current match",
                "this hash matches nothing in the bank now; nothing was recorded",
                kind="no-current-match",
            ) from None
        return 201, {
            "sighting_id": sighting_id,
            "matches": [
                _match_out(state, principal, r.hit).model_dump(exclude_none=True) for r in recorded
            ],
        }

    return await runtime.idempotency.run(
        principal=principal.principal_id,
        key=idempotency_key,
        fingerprint=request_fingerprint("POST", "/v1/sightings", body.model_dump(mode="json")),
        handler=handle,
    )


@router.get("/hashes/changes", tags=["platforms"])
async def hash_changes(
    request: Request,
    state: App,
    principal: Caller,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> ChangePage:
    """The hash list as a delta feed (like StopNCII's fetch): additions and removals since your
    cursor, in a stable order. Start without a cursor for the whole list; keep `next_cursor`
    and ask again later. Withdrawn and erased cases' hashes, and hashes confirmed as false
    positives, come as removals. The cursor is valid on every replica."""
    require_role(principal, *PLATFORMS)
    runtime = runtime_of(request)
    cursors = {"c": 0, "r": 0}
    if cursor is not None:
        position = decode_cursor(cursor)
        try:
            cursors = {"c": int(position["c"]), "r": int(position["r"])}
        except (KeyError, TypeError, ValueError):
            raise Problem(422, "Invalid cursor", "cursor is not one this API returned") from None
    async with runtime.engine.connect() as conn:
        rows = await conn.run_sync(projections.changes_since, cursors, limit, ("add", "remove"))
    items: list[Change] = []
    for r in rows:
        cursors[r.stream] = max(cursors[r.stream], int(r.key))
        if r.entry_key is None or r.algorithm not in ("pdq", "md5") or not r.value:
            continue  # vPDQ frames are matched here, not listed
        dihedral = [r.value, *_split(r.aliases)] if r.aliases else None
        items.append(
            Change(
                change=r.kind,
                id=state.tokens.match_id(principal.organisation, r.entry_key),
                bank=state.tokens.bank_id(r.bank),
                algorithm=r.algorithm,
                media=r.media,
                value=r.value,
                dihedral=dihedral,
            )
        )
    return ChangePage(items=items, next_cursor=encode_cursor(cursors), has_more=len(rows) == limit)


def _split(concat: str | None) -> list[str]:
    text = concat or ""
    return [text[i : i + 64] for i in range(0, len(text), 64)]


@router.post("/matches/{match_id}/feedback", tags=["platforms"])
async def match_feedback(
    request: Request,
    state: App,
    match_id: Annotated[str, Path(max_length=80)],
    body: Feedback,
    principal: Caller,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Your verdict on a match: `blocked`, `not_blocked`, or `false_positive` (with the hash of
    your content, so a case worker can put it into the negative bank)."""
    require_role(principal, *PLATFORMS)
    runtime = runtime_of(request)

    async def handle() -> tuple[int, dict[str, Any]]:
        content = (body.content.algorithm, body.content.value.lower()) if body.content else None
        try:
            await state.handlers.feedback(
                principal, match_id, body.verdict, content, idempotency_key
            )
        except NotFoundError:
            raise not_found("match") from None
        return 200, {"match_id": match_id, "verdict": body.verdict}

    return await runtime.idempotency.run(
        principal=principal.principal_id,
        key=idempotency_key,
        fingerprint=request_fingerprint("POST", request.url.path, body.model_dump(mode="json")),
        handler=handle,
    )


# -- banks (case workers, admins) ------------------------------------------------------------------


def _check_bank_name(error: str | None) -> None:
    """A 422 that names the path's bank name as the field to fix, when ``error`` says why."""
    if error is not None:
        raise Problem(
            422,
            "Invalid bank name",
            error,
            kind="validation",
            errors=[{"field": "name", "message": error}],
        )


def _bank_out(state: HashmatchApp, row: dict[str, Any]) -> BankOut:
    return BankOut(
        name=row["name"],
        public_id=state.tokens.bank_id(row["name"]),
        kind=row["kind"],
        enabled=row["enabled"],
        pdq_threshold=row["pdq_threshold"],
        match_dihedral=row["match_dihedral"],
        vpdq_query_match_percent=row["vpdq_query_match_percent"],
        vpdq_compared_match_percent=row["vpdq_compared_match_percent"],
        live_hashes=row["live_hashes"],
        updated_at=row["updated_at"],
    )


@router.get("/banks", tags=["banks"])
async def list_banks(request: Request, state: App, principal: Caller) -> BankList:
    """Every bank: partner organisations' case banks (`ORG_...`) and imported lists, with their
    settings, the id platforms see, and how many hashes are live."""
    require_role(principal, *BANK_STAFF)
    runtime = runtime_of(request)
    async with runtime.engine.connect() as conn:
        rows = await conn.run_sync(projections.bank_rows)
    return BankList(items=[_bank_out(state, r) for r in rows])


@router.put("/banks/{name}", tags=["banks"])
async def configure_bank(
    request: Request,
    state: App,
    name: BankName,
    body: BankSettingsIn,
    principal: Caller,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Set a bank's settings (all of them): enabled, the PDQ distance threshold (inclusive,
    default 31), matching of rotations/flips, and vPDQ's frame shares."""
    require_role(principal, *BANK_STAFF)
    _check_bank_name(domain.bank_name_error(name))
    runtime = runtime_of(request)
    settings = body.settings()

    async def handle() -> tuple[int, dict[str, Any]]:
        await state.handlers.configure_bank(name, settings, principal, idempotency_key)
        return 200, {"name": name, "public_id": state.tokens.bank_id(name), **body.model_dump()}

    return await runtime.idempotency.run(
        principal=principal.principal_id,
        key=idempotency_key,
        fingerprint=request_fingerprint("PUT", request.url.path, body.model_dump(mode="json")),
        handler=handle,
    )


async def _read_text(request: Request) -> str:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_IMPORT_BYTES:
            raise Problem(
                413,
                "Too large",
                f"send at most {MAX_IMPORT_BYTES // (1024 * 1024)} MB per import; split the list",
            )
        chunks.append(chunk)
    try:
        return b"".join(chunks).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Problem(
            422, "Invalid list", "the list must be UTF-8 text", kind="validation"
        ) from None


@router.post(
    "/banks/{name}/import",
    tags=["banks"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/plain": {"schema": {"type": "string"}, "example": "pdq f8f8...\n"}},
        }
    },
)
async def import_list(
    request: Request,
    state: App,
    name: BankName,
    principal: Caller,
    mode: Annotated[Literal["add", "replace"], Query()] = "add",
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Import a hash list in python-threatexchange's plain format: one `pdq <64 hex>` or
    `video_md5 <32 hex>` per line (blank lines and `# comments` are skipped). All lines must
    be valid, or nothing is imported and the 422 lists each bad line. `mode=replace`: the bank
    then holds exactly this list (the rest become removals). Hashes already in the bank, or in
    the negative bank, are not added twice."""
    require_role(principal, *BANK_STAFF)
    _check_bank_name(domain.list_bank_error(name))
    runtime = runtime_of(request)
    text = await _read_text(request)
    parsed = domain.parse_hash_list(text)
    if parsed.lines > domain.MAX_IMPORT_LINES:
        raise Problem(
            413, "Too large", f"at most {domain.MAX_IMPORT_LINES} lines per import; split the list"
        )
    if not parsed.ok:
        shown = parsed.errors[: domain.MAX_REPORTED_LINE_ERRORS]
        more = len(parsed.errors) - len(shown)
        raise Problem(
            422,
            "Invalid list",
            f"{len(parsed.errors)} line(s) are not '<signal_type> <signal>'; nothing was "
            f"imported{f' ({more} more not listed)' if more else ''}",
            kind="validation",
            errors=[{"field": f"line {e.line}", "message": e.message} for e in shown],
        )

    async def handle() -> tuple[int, dict[str, Any]]:
        pairs = [(h.algorithm, h.value) for h in parsed.hashes]
        async with runtime.engine.connect() as conn:
            present = await conn.run_sync(projections.present_in_bank, name, pairs)
        result = await state.handlers.import_list(name, parsed, mode, principal, idempotency_key)
        return 200, {
            "bank": name,
            "import_id": result.import_id,
            "mode": mode,
            "lines": parsed.lines,
            "hashes": len(parsed.hashes),
            "duplicate_lines": parsed.duplicates,
            "already_in_bank": present,
            "events": result.chunks,
        }

    return await runtime.idempotency.run(
        principal=principal.principal_id,
        key=idempotency_key,
        fingerprint=request_fingerprint(
            "POST", f"{request.url.path}?mode={mode}", {"sha256": _sha256(text)}
        ),
        handler=handle,
    )


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@router.get(
    "/banks/{name}/export",
    tags=["banks"],
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
async def export_bank(request: Request, name: BankName, principal: Caller) -> Response:
    """A bank's live hashes in python-threatexchange's plain format (`pdq ...`, `video_md5 ...`),
    for HMA's file exchange. Image MD5s and vPDQ have no signal type there: the count left out
    is in the `X-Ncii-Not-Exported` header."""
    require_role(principal, *BANK_STAFF)
    runtime = runtime_of(request)
    entries = projections.ENTRIES
    async with runtime.engine.connect() as conn:
        exists = (
            await conn.execute(
                select(projections.BANKS.c.name).where(projections.BANKS.c.name == name)
            )
        ).first()
        if exists is None:
            raise not_found("bank")
        skipped = (
            await conn.execute(
                select(func.count()).where(
                    entries.c.bank == name,
                    entries.c.live.is_(True),
                    (entries.c.algorithm == "vpdq")
                    | ((entries.c.algorithm == "md5") & (entries.c.media != "video")),
                )
            )
        ).scalar_one()

    async def lines() -> AsyncIterator[bytes]:
        after = 0
        while True:
            async with runtime.engine.connect() as conn:
                rows = await conn.run_sync(projections.bank_export_rows, name, after, EXPORT_PAGE)
            if not rows:
                return
            out = [domain.export_line(r.algorithm, r.media, r.value) for r in rows]
            yield "".join(f"{line}\n" for line in out if line).encode()
            after = int(rows[-1].entry_id)

    return StreamingResponse(
        lines(),
        media_type="text/plain; charset=utf-8",
        headers={
            "X-Ncii-Not-Exported": str(int(skipped)),
            "Content-Disposition": f'attachment; filename="{name}.txt"',
        },
    )


# -- false positives (case workers) ----------------------------------------------------------------


@router.get("/false-positives", tags=["false positives"])
async def list_false_positives(
    request: Request,
    principal: Caller,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> JSONResponse:
    """Matches platforms reported as false positives, awaiting a case worker's decision."""
    require_role(principal, *BANK_STAFF)
    runtime = runtime_of(request)
    after = str(decode_cursor(cursor).get("m", "")) if cursor else None
    async with runtime.engine.connect() as conn:
        rows = await conn.run_sync(projections.open_false_positives, limit + 1, after)
    more = len(rows) > limit
    rows = rows[:limit]
    return JSONResponse(
        {
            "items": [
                {
                    "match_id": r.match_id,
                    "bank": r.bank,
                    "algorithm": r.algorithm,
                    "platform": r.platform,
                    "sightings": r.sightings,
                    "reported_at": r.verdict_at,
                    "content_hash_reported": r.content_value is not None,
                }
                for r in rows
            ],
            "next_cursor": encode_cursor({"m": rows[-1].match_id}) if more else None,
        }
    )


@router.post("/false-positives/{match_id}/confirm", tags=["false positives"])
async def confirm_false_positive(
    request: Request,
    state: App,
    match_id: Annotated[str, Path(max_length=80)],
    principal: Caller,
    body: ConfirmFalsePositive | None = None,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Confirm a false positive: the hash enters the negative bank. From then on a look-up is
    suppressed when it is at least as close to a negative-bank hash as to the banked one, and
    an identical banked hash leaves matching and the delta feed. Confirming twice is a no-op."""
    require_role(principal, *BANK_STAFF)
    runtime = runtime_of(request)
    command = body or ConfirmFalsePositive()

    async def handle() -> tuple[int, dict[str, Any]]:
        try:
            event = await state.handlers.confirm_false_positive(principal, match_id, command.target)
        except NotFoundError:
            raise not_found("match") from None
        except domain.BankRuleError as exc:
            raise Problem(409, "Not possible for this match", exc.detail, kind=exc.kind) from None
        return 200, {
            "negative_id": event.negative_id,
            "match_id": match_id,
            "target": event.target,
            "algorithm": event.algorithm,
        }

    return await runtime.idempotency.run(
        principal=principal.principal_id,
        key=idempotency_key,
        fingerprint=request_fingerprint("POST", request.url.path, command.model_dump(mode="json")),
        handler=handle,
    )


@router.get("/matcher/status", tags=["banks"])
async def matcher_status(request: Request, state: App, principal: Caller) -> JSONResponse:
    """The matcher's index sizes, cursors, restore time and look-up counts (no hashes)."""
    require_role(principal, *BANK_STAFF)
    matcher = state.matcher
    return JSONResponse({**matcher.status(), "pending_changes": await matcher.pending()})
