"""Referrals. The case's side (its partner NGO, case workers) offers, revokes and follows up;
counsellors of the receiving partner list, read and answer the referrals addressed to their
organisation (another organisation's: 404, decided before anything is decrypted) and see the
pseudonym, the needs and, only with the victim's consent, one contact route."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from ncii_contracts.referral import CounsellorNoteAdded, FollowUpRecorded, ReferralOffered
from ncii_events.auth import Principal, require_role
from ncii_events.http import IdempotentWrite
from ncii_events.http.rate_limits import CASE_WRITES, rate_limited
from ncii_events.service import ServiceRoute
from pydantic import BaseModel

from ncii_referral import domain
from ncii_referral.http import App, Caller, command_problems
from ncii_referral.http.bodies import AddNote, Decline, FollowUp, OfferReferral, Revoke
from ncii_referral.outbox import derived_id
from ncii_referral.read_models import queries

router = APIRouter(prefix="/v1", route_class=ServiceRoute)
WRITE_LIMIT = rate_limited(CASE_WRITES)
"""Every write counts against the caller's case-write budget, checked before the body (24)."""
COUNSELLOR = ("counsellor",)


def state_view(referral: domain.Referral) -> dict[str, Any]:
    return {
        "referral_id": referral.referral_id,
        "partner_id": referral.partner_id,
        "service": referral.service,
        "status": referral.status,
        "consent_basis": referral.consent_basis,
        "offered_at": referral.offered_at,
        "follow_ups": referral.follow_ups,
    }


def row_view(row: Any) -> dict[str, Any]:
    return {
        "referral_id": row.referral_id,
        "case_id": row.case_id,
        "partner_id": row.partner_id,
        "service": row.service,
        "status": row.status,
        "consent_basis": row.consent_basis,
        "offered_at": row.offered_at,
        "updated_at": row.updated_at,
    }


async def _write(
    principal: Principal,
    idempotent: IdempotentWrite,
    body: BaseModel | None,
    roles: tuple[str, ...],
    action: Callable[[], Awaitable[domain.Referral]],
    status: int = 200,
    key_for: str | None = None,
) -> JSONResponse:
    require_role(principal, *roles)
    if key_for is not None:  # a fact with nothing in clear to know its retry by: 428 without
        idempotent.required(key_for)

    async def handle() -> tuple[int, dict[str, Any]]:
        with command_problems():
            referral = await action()
        return status, state_view(referral)

    return await idempotent.run(principal.principal_id, body, handle)


# -- the case's side ----------------------------------------------------------------------------


@router.post(
    "/cases/{case_id}/referrals", status_code=201, tags=["referrals"], openapi_extra=WRITE_LIMIT
)
async def offer_referral(
    case_id: str, body: OfferReferral, principal: Caller, app: App, idempotent: IdempotentWrite
) -> JSONResponse:
    """Offer the case to a support partner. Needs the victim's consent to referral; without it
    only a case worker may offer, with an `override` reason (recorded as its own event), and
    the partner then gets no contact route. Adults are offered `stopncii_enrolment`, minors
    `photodna_programme`, never the other way round (422). Send an `Idempotency-Key` (a new
    one per offer, the same one when you retry; 428 without it): a second offer to the same
    partner can be meant, so only the key tells it from a retry."""
    override = (
        domain.Override(body.override.reason, body.override.explanation)
        if body.override is not None
        else None
    )
    return await _write(
        principal,
        idempotent,
        body,
        domain.CASE_WRITERS,
        lambda: app.offer(
            principal,
            idempotent.key,
            case_id,
            partner_id=body.partner_id,
            service=body.service,
            needs=body.needs,
            override=override,
        ),
        status=201,
        key_for="referral offer",
    )


@router.get("/cases/{case_id}/referrals", tags=["referrals"])
async def case_referrals(case_id: str, principal: Caller, app: App) -> JSONResponse:
    """The case's referrals and their states."""
    require_role(principal, *domain.CASE_READERS)
    with command_problems("case"):
        await app.visible_case(principal, case_id)
    rows = await queries.case_referrals(app.engine, case_id)
    return JSONResponse({"items": [row_view(r) for r in rows]})


@router.post(
    "/cases/{case_id}/referrals/{referral_id}/revoke", tags=["referrals"], openapi_extra=WRITE_LIMIT
)
async def revoke(
    case_id: str,
    referral_id: str,
    body: Revoke,
    principal: Caller,
    app: App,
    idempotent: IdempotentWrite,
) -> JSONResponse:
    """Withdraw an offered or accepted referral."""
    at = app.now()
    return await _write(
        principal,
        idempotent,
        body,
        domain.CASE_WRITERS,
        lambda: app.case_change(
            principal,
            idempotent.key,
            case_id,
            referral_id,
            "revoke",
            lambda r: r.revoke(principal.role, at, body.reason),
        ),
    )


@router.post(
    "/cases/{case_id}/referrals/{referral_id}/follow-ups",
    tags=["referrals"],
    openapi_extra=WRITE_LIMIT,
)
async def case_follow_up(
    case_id: str,
    referral_id: str,
    body: FollowUp,
    principal: Caller,
    app: App,
    idempotent: IdempotentWrite,
) -> JSONResponse:
    """The victim was contacted again, and how she is (the note is encrypted). A follow-up is
    its time and outcome: the same two again without an `Idempotency-Key` are a retry."""
    return await _write(
        principal,
        idempotent,
        body,
        domain.CASE_WRITERS,
        lambda: app.case_change(
            principal,
            idempotent.key,
            case_id,
            referral_id,
            "follow-up",
            lambda r: r.follow_up(principal.role, body.contacted_at, body.outcome, body.note),
            identity=follow_up_identity(body),
        ),
    )


def follow_up_identity(body: FollowUp) -> tuple[str, str]:
    """What a follow-up says in clear (never its note, which is personal)."""
    return (domain.format_time(body.contacted_at), body.outcome)


# -- the receiving partner (counsellors) --------------------------------------------------------


@router.get("/referrals", tags=["counsellors"])
async def my_referrals(
    principal: Caller, app: App, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> JSONResponse:
    """The referrals addressed to your organisation (no case data here: open one to read it)."""
    require_role(principal, *COUNSELLOR)
    rows = await queries.referrals_for(app.engine, principal.organisation, limit)
    return JSONResponse(
        {"items": [{k: v for k, v in row_view(r).items() if k != "case_id"} for r in rows]}
    )


@router.get("/referrals/{referral_id}", tags=["counsellors"])
async def read_referral(referral_id: str, principal: Caller, app: App) -> JSONResponse:
    """A referral addressed to your organisation: the pseudonym, the needs, the one contact
    route while the victim consents to referral, and your notes. Nothing else of the case."""
    require_role(principal, *COUNSELLOR)
    with command_problems():
        row, offered, events = await app.referral_for_partner(principal, referral_id)
    contact = None
    # the contact route only while she consents to referral (withdrawn: decision 36)
    case = await queries.case(app.engine, row.case_id)
    consents = case is not None and bool(case.consents_referral)
    if (
        consents
        and isinstance(offered, ReferralOffered)
        and offered.contact_kind
        and offered.contact_value
    ):
        contact = {"kind": offered.contact_kind, "value": offered.contact_value}
    notes = [
        {"note_id": e.event.note_id, "note": e.event.note, "at": e.envelope.occurred_at}
        for e in events
        if isinstance(e.event, CounsellorNoteAdded)
    ]
    follow_ups = [
        {"contacted_at": e.event.contacted_at, "outcome": e.event.outcome}
        for e in events
        if isinstance(e.event, FollowUpRecorded)
    ]
    return JSONResponse(
        {
            "referral_id": row.referral_id,
            "service": row.service,
            "status": row.status,
            "offered_at": row.offered_at,
            "pseudonym": offered.pseudonym if offered else None,
            "needs": list(offered.needs) if offered else [],
            "contact": contact,
            "notes": notes,
            "follow_ups": follow_ups,
        }
    )


def _partner_step(
    what: str,
    decide: Callable[[domain.Referral, Principal, App, BaseModel | None], Any],
    *,
    identity: Sequence[str] = (),
    key_for: str | None = None,
) -> Callable[..., Awaitable[JSONResponse]]:
    async def route(
        referral_id: str,
        principal: Principal,
        app: App,
        idempotent: IdempotentWrite,
        body: BaseModel | None = None,
    ) -> JSONResponse:
        return await _write(
            principal,
            idempotent,
            body,
            COUNSELLOR,
            lambda: app.partner_change(
                principal,
                idempotent.key,
                referral_id,
                what,
                lambda r: decide(r, principal, app, body),
                identity,
            ),
            key_for=key_for,
        )

    return route


@router.post("/referrals/{referral_id}/accept", tags=["counsellors"], openapi_extra=WRITE_LIMIT)
async def accept(
    referral_id: str, principal: Caller, app: App, idempotent: IdempotentWrite
) -> JSONResponse:
    return await _partner_step("accept", lambda r, p, a, _b: r.accept(p.role, a.now()))(
        referral_id, principal, app, idempotent
    )


@router.post("/referrals/{referral_id}/decline", tags=["counsellors"], openapi_extra=WRITE_LIMIT)
async def decline(
    referral_id: str, body: Decline, principal: Caller, app: App, idempotent: IdempotentWrite
) -> JSONResponse:
    return await _partner_step(
        "decline", lambda r, p, a, _b: r.decline(p.role, a.now(), body.reason)
    )(referral_id, principal, app, idempotent, body)


@router.post("/referrals/{referral_id}/complete", tags=["counsellors"], openapi_extra=WRITE_LIMIT)
async def complete(
    referral_id: str, principal: Caller, app: App, idempotent: IdempotentWrite
) -> JSONResponse:
    return await _partner_step("complete", lambda r, p, a, _b: r.complete(p.role, a.now()))(
        referral_id, principal, app, idempotent
    )


@router.post("/referrals/{referral_id}/follow-ups", tags=["counsellors"], openapi_extra=WRITE_LIMIT)
async def partner_follow_up(
    referral_id: str, body: FollowUp, principal: Caller, app: App, idempotent: IdempotentWrite
) -> JSONResponse:
    return await _partner_step(
        "follow-up",
        lambda r, p, _a, _b: r.follow_up(p.role, body.contacted_at, body.outcome, body.note),
        identity=follow_up_identity(body),
    )(referral_id, principal, app, idempotent, body)


@router.post("/referrals/{referral_id}/notes", tags=["counsellors"], openapi_extra=WRITE_LIMIT)
async def add_note(
    referral_id: str, body: AddNote, principal: Caller, app: App, idempotent: IdempotentWrite
) -> JSONResponse:
    """A counsellor's note (encrypted with the case's key, erased with the case). Send an
    `Idempotency-Key` (a new one per note, the same one when you retry): a note is free text
    only, so nothing in clear tells a retry from a second note (428 without it)."""
    # the key is checked (428) in the step, after the role; the id derives from it
    note_id = derived_id(principal.principal_id, idempotent.key or "", "note id", referral_id)
    return await _partner_step(
        "note",
        lambda r, p, _a, _b: r.add_note(p.role, note_id, body.note),
        key_for="note",
    )(referral_id, principal, app, idempotent, body)
