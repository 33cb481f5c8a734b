"""The platform exchange (role ``platform``): look-ups, sightings, the delta feed of the hash
list, and feedback on matches."""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from ncii_events.auth import require_role
from ncii_events.http import IdempotentWrite, Problem, decode_cursor, encode_cursor
from ncii_events.http.fields import utc_text
from ncii_events.http.limits import MiB, body_limit
from ncii_events.http.rate_limits import (
    FEEDBACK,
    LOOKUPS,
    SIGHTINGS,
    Limits,
    rate_limited,
    taken_before_body,
)
from ncii_events.service import ServiceRoute

from ncii_hashmatch.http import PLATFORMS, App, Caller, command_problems
from ncii_hashmatch.http.bodies import Feedback, Lookup, Sighting
from ncii_hashmatch.http.views import ChangePage, ItemResult, LookupResult, change, match_out
from ncii_hashmatch.read_models import queries

log = logging.getLogger("ncii.hashmatch.api")
#: What a feed cursor issued before programmes existed was issued for: every bank.
FEED_BEFORE_PROGRAMMES = "adults,child_protection"
router = APIRouter(prefix="/v1", route_class=ServiceRoute)
#: One video of the most frames an item may have (20,000, about 2.2 MB) with room to spare,
#: or 1,000 image hashes with their rotations (decision 21).
LOOKUP_BODY_LIMIT = 4 * MiB
#: One hash, one address and a time; the hash may be a video of 20,000 frames (about 2.2 MB).
SIGHTING_BODY_LIMIT = 3 * MiB
#: A look-up's cost (hashes and frames) estimated from its size before it is read: a frame or
#: an image hash takes 50 to 100 bytes of JSON, so this errs low; the rest is charged once the
#: body is parsed (decision 24).
LOOKUP_BYTES_PER_UNIT = 100


@router.post(
    "/lookups",
    tags=["platforms"],
    openapi_extra={
        **body_limit(LOOKUP_BODY_LIMIT),
        **rate_limited(LOOKUPS, bytes_per_unit=LOOKUP_BYTES_PER_UNIT),
    },
)
async def lookup(
    request: Request, state: App, body: Lookup, principal: Caller, limits: Limits
) -> LookupResult:
    """Look up a batch of up to 1,000 hashes. Each match has its distance, an opaque bank id
    and an opaque match id (for a sighting or feedback). Only the banks of the hash-sharing
    programmes you are subscribed to are searched. A PDQ item may carry the 8 rotations
    and flips of the image (`ncii hash --dihedral`) to catch rotated or flipped copies even in
    banks that hold no rotations. Look-ups are reads: nothing is recorded but a count.

    Each key has a budget of hashes and frames a minute (an image with its rotations counts 8,
    a video its frames); beyond it, 429 with `Retry-After`."""
    require_role(principal, *PLATFORMS)
    limits.settle(principal.principal_id, LOOKUPS, body.cost, taken_before_body(request))
    t0 = time.perf_counter()
    programmes, _ = await queries.platform_programmes(state.engine, principal.organisation)
    results = await state.matcher.lookup([item.query() for item in body.items], programmes)
    matched = sum(1 for r in results if r)
    log.info(
        "lookup: %d items, %d matched, %.1f ms",
        len(body.items),
        matched,
        1000 * (time.perf_counter() - t0),
    )
    org = principal.organisation
    return LookupResult(
        items=[
            ItemResult(
                index=i,
                matches=[match_out(state.tokens, org, h) for h in hits],
                skipped="low_quality" if item.low_quality else None,
            )
            for (i, hits), item in zip(enumerate(results), body.items, strict=True)
        ]
    )


@router.post(
    "/sightings",
    status_code=201,
    tags=["platforms"],
    openapi_extra={**body_limit(SIGHTING_BODY_LIMIT), **rate_limited(SIGHTINGS)},
)
async def report_sighting(
    state: App, body: Sighting, principal: Caller, idempotent: IdempotentWrite
) -> JSONResponse:
    """Report where you saw content matching the bank. The hash must match now. Your first
    sighting of a banked hash in a window (an hour by default) is recorded on the victim's case
    as `MatchFound` (with the URL, encrypted) so takedown can act; later ones in the window are
    counted, and the count is recorded as one `SightingsCounted` when the window closes (their
    URLs are not kept). Each key may report a limited number of sightings a minute (429 with
    `Retry-After` beyond it)."""
    require_role(principal, *PLATFORMS)

    async def handle() -> tuple[int, dict[str, Any]]:
        with command_problems():
            sighting_id, recorded = await state.report_sighting(
                principal, body.hash.query(), body.url, utc_text(body.seen_at)
            )
        org = principal.organisation
        return 201, {
            "sighting_id": sighting_id,
            "matches": [
                match_out(state.tokens, org, r.hit).model_dump(exclude_none=True) for r in recorded
            ],
        }

    return await idempotent.run(principal.principal_id, body, handle)


@router.get("/hashes/changes", tags=["platforms"])
async def hash_changes(
    state: App,
    principal: Caller,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> ChangePage:
    """The hash list as a delta feed (like StopNCII's fetch): additions and removals since your
    cursor. Start without a cursor for the whole list; keep `next_cursor` and ask again later.
    A removal names the entry by the `id` its addition had (never by its hash): withdrawn and
    erased cases' hashes, and hashes confirmed as false positives, come as removals, and a
    hash already removed is not listed at all. Case hashes are released in windows (every
    `NCII_HASHMATCH_FEED_WINDOW_S`, 300 s by default) and mixed within each, so the feed does
    not show which hashes came from one submission; look-ups match them at once. The cursor is
    valid on every replica. Only the banks of the hash-sharing programmes you are subscribed
    to are listed; when your subscription changes, the next page says `reset: true` and
    starts the list again: drop the hashes you hold and rebuild them from that page on."""
    require_role(principal, *PLATFORMS)
    programmes, _ = await queries.platform_programmes(state.engine, principal.organisation)
    subscribed = ",".join(programmes)
    position = queries.FeedPosition()
    reset = False
    if cursor is not None:
        try:
            doc = decode_cursor(cursor)
            position = queries.FeedPosition.of(doc)
            issued_for = str(doc.get("p", FEED_BEFORE_PROGRAMMES))
        except (KeyError, TypeError, ValueError):
            raise Problem(422, "Invalid cursor", "cursor is not one this API returned") from None
        if issued_for != subscribed:
            # the subscription changed since this cursor: the list starts again
            position, reset = queries.FeedPosition(), True
    released = queries.released_before(state.clock(), state.feed.window_s)
    page = await queries.feed(
        state.engine, position, limit, released, state.feed.window_cap, programmes
    )
    listed = (change(state.tokens, principal.organisation, r) for r in page.rows)
    return ChangePage(
        items=[c for c in listed if c is not None],
        next_cursor=encode_cursor({**page.position.doc(), "p": subscribed}),
        has_more=page.has_more,
        reset=reset,
    )


@router.post(
    "/matches/{match_id}/feedback", tags=["platforms"], openapi_extra=rate_limited(FEEDBACK)
)
async def match_feedback(
    state: App,
    match_id: Annotated[str, Path(max_length=80)],
    body: Feedback,
    principal: Caller,
    idempotent: IdempotentWrite,
) -> JSONResponse:
    """Your verdict on a match: `blocked`, `not_blocked`, or `false_positive` (with the hash of
    your content, so a case worker can put it into the negative bank). The same verdict again
    records nothing new."""
    require_role(principal, *PLATFORMS)

    async def handle() -> tuple[int, dict[str, Any]]:
        content = (body.content.algorithm, body.content.value.lower()) if body.content else None
        with command_problems():
            await state.feedback(principal, match_id, body.verdict, content, idempotent.key)
        return 200, {"match_id": match_id, "verdict": body.verdict}

    return await idempotent.run(principal.principal_id, body, handle)
