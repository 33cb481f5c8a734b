"""False positives, for case workers and admins: what platforms reported, and confirming it
into the negative bank."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse
from ncii_events.auth import require_role
from ncii_events.http import IdempotentWrite, decode_cursor, encode_cursor
from ncii_events.service import ServiceRoute

from ncii_hashmatch.http import BANK_STAFF, App, Caller, command_problems
from ncii_hashmatch.http.bodies import ConfirmFalsePositive
from ncii_hashmatch.http.views import false_positive
from ncii_hashmatch.read_models import queries

router = APIRouter(prefix="/v1", route_class=ServiceRoute)


@router.get("/false-positives", tags=["false positives"])
async def list_false_positives(
    state: App,
    principal: Caller,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> JSONResponse:
    """Matches platforms reported as false positives, awaiting a case worker's decision. A
    reported content comes with its distance to the banked hash and whether it is within the
    match threshold (then it may be a copy of the victim's image)."""
    require_role(principal, *BANK_STAFF)
    after = str(decode_cursor(cursor).get("m", "")) if cursor else None
    rows = await queries.open_false_positives(state.engine, limit + 1, after)
    more = len(rows) > limit
    rows = rows[:limit]
    return JSONResponse(
        {
            "items": [
                false_positive(r, state.compare_content(r, (r.content_algorithm, r.content_value)))
                for r in rows
            ],
            "next_cursor": encode_cursor({"m": rows[-1].match_id}) if more else None,
        }
    )


@router.post("/false-positives/{match_id}/confirm", tags=["false positives"])
async def confirm_false_positive(
    state: App,
    match_id: Annotated[str, Path(max_length=80)],
    principal: Caller,
    idempotent: IdempotentWrite,
    body: ConfirmFalsePositive | None = None,
) -> JSONResponse:
    """Confirm a false positive: the hash enters the negative bank. From then on a look-up is
    suppressed when it is at least as close to a negative-bank hash as to the banked one, and
    an identical banked hash leaves matching and the delta feed. Confirming twice is a no-op.
    A reported content equal to the banked hash is refused (409); one within the match
    threshold is refused (409) unless `near_banked_hash_reviewed` is true."""
    require_role(principal, *BANK_STAFF)
    command = body or ConfirmFalsePositive()

    async def handle() -> tuple[int, dict[str, Any]]:
        with command_problems():
            event = await state.confirm_false_positive(
                principal, match_id, command.target, command.near_banked_hash_reviewed
            )
        return 200, {
            "negative_id": event.negative_id,
            "match_id": match_id,
            "target": event.target,
            "algorithm": event.algorithm,
        }

    return await idempotent.run(principal.principal_id, command, handle)
