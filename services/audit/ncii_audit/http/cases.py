"""Auditors (role `auditor`, read only, every organisation) replay a case from the log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import HTMLResponse, Response
from ncii_contracts.intake import RevealReason
from ncii_events.auth import Principal, require_role
from ncii_events.http import Problem, not_found
from ncii_events.http.rate_limits import CASE_WRITES, rate_limited
from ncii_events.service import ServiceRoute, app_of, authenticated
from starlette.concurrency import run_in_threadpool

from ncii_audit.app import AuditApp, CaseNotFoundError, Reveal
from ncii_audit.bundle import bundle_file_name, render_html, render_pdf
from ncii_audit.history import fold

router = APIRouter(prefix="/v1/audit", route_class=ServiceRoute)
AUDITORS = ("auditor",)
App = Annotated[AuditApp, Depends(app_of(AuditApp))]
Caller = Annotated[Principal, Depends(authenticated)]
REPLAY_ENDPOINT = "GET /v1/audit/cases/{case_id}"
#: Each audit read replays a whole case from the log (and a reveal appends): limited per
#: auditor with the case writes' budget (decision 24), so one key cannot keep the log busy.
READS = rate_limited(CASE_WRITES)


def _as_of(as_of: datetime | None) -> datetime | None:
    if as_of is not None and as_of.tzinfo is None:
        raise Problem(
            422,
            "Time zone required",
            "give as_of with its time zone, e.g. 2026-11-30T08:00:00Z",
            errors=[{"field": "as_of", "message": "a time without a zone is ambiguous"}],
        )
    return as_of


def _reveal(
    reveal: str | None, reason: RevealReason | None, ticket: str | None, endpoint: str
) -> Reveal | None:
    if reveal != "personal":
        return None
    if reason is None:
        raise Problem(
            422,
            "Reason required",
            "say why you read this case's personal data: add reason=<one of "
            + ", ".join(get_args(RevealReason))
            + ">; the read is recorded",
            errors=[{"field": "reason", "message": "required with reveal=personal"}],
        )
    return Reveal(reason, ticket, endpoint)


RevealParam = Annotated[
    Literal["personal"] | None,
    Query(description="`personal`: show the personal fields (the read is recorded first)"),
]
ReasonParam = Annotated[
    RevealReason | None, Query(description="with reveal: why you read them (recorded)")
]
TicketParam = Annotated[
    str | None,
    Query(
        max_length=64,
        pattern=r"^[A-Za-z0-9._:/#-]+$",
        description="with reveal: your ticket or request reference (recorded)",
    ),
]
AsOfParam = Annotated[
    datetime | None,
    Query(description="the case as it stood at this time (with its zone): events up to it"),
]


@router.get("/cases/{case_id}", tags=["audit"], openapi_extra=READS)
async def replay_case(
    case_id: str,
    principal: Caller,
    app: App,
    as_of: AsOfParam = None,
    reveal: RevealParam = None,
    reason: ReasonParam = None,
    ticket: TicketParam = None,
) -> dict[str, Any]:
    """The case's whole history across every service, in log order, from the log alone: who
    did what, when, why (correlation and causation), each payload, and each event's hash-chain
    link and signature verified (`check`; `summary.first_break` names the first bad event).
    Personal fields are null (`personal` says which are withheld or erased) unless
    `reveal=personal&reason=...`: then a `PersonalDataRead` is recorded first. `as_of`: only
    the events up to that time, `state`, the case's aggregates as they stood (each field's
    latest value), and `domain`, each aggregate folded by its own service's domain code (the
    case's status, a report's due time, a takedown's or a referral's state)."""
    require_role(principal, *AUDITORS)
    when = _as_of(as_of)
    asked = _reveal(reveal, reason, ticket, REPLAY_ENDPOINT)
    try:
        history = await app.replay(case_id, principal.actor, reveal=asked, as_of=when)
    except CaseNotFoundError:
        raise not_found() from None
    body: dict[str, Any] = {
        "summary": history.summary(),
        "events": [e.to_json() for e in history.entries],
    }
    if when is not None:
        body["state"] = [s.to_json() for s in fold(history)]
        body["domain"] = history.domain or []
    return body


@router.get("/cases/{case_id}/access-log", tags=["audit"], openapi_extra=READS)
async def access_log(case_id: str, principal: Caller, app: App) -> dict[str, Any]:
    """Who read the case's personal data, when, why and through which endpoint (every
    `PersonalDataRead`: an admin's reveal in intake and an auditor's here)."""
    require_role(principal, *AUDITORS)
    try:
        reads = await app.access_log(case_id)
    except CaseNotFoundError:
        raise not_found() from None
    return {"case_id": case_id, "reads": reads}


BundleFormat = Literal["json", "pdf", "html"]
FormatParam = Annotated[
    BundleFormat | None,
    Query(
        alias="format",
        description="`json` (the default, the file to verify), `pdf` (also asked by "
        "`Accept: application/pdf`; the signed JSON attached) or `html`: printable renderings",
    ),
]


def _bundle_format(asked: BundleFormat | None, accept: str | None) -> BundleFormat:
    if asked is not None:
        return asked
    return "pdf" if accept is not None and "application/pdf" in accept.lower() else "json"


@router.get(
    "/cases/{case_id}/bundle",
    tags=["audit"],
    openapi_extra=READS,
    response_model=None,
    responses={
        200: {
            "content": {
                "application/json": {},
                "application/pdf": {},
                "text/html": {},
            }
        }
    },
)
async def case_bundle(
    case_id: str,
    principal: Caller,
    app: App,
    as_format: FormatParam = None,
    accept: Annotated[str | None, Header()] = None,
) -> dict[str, Any] | Response:
    """The case bundle for the police or a court: the history (personal fields withheld),
    the evidence hashes' chain proof and a detached Ed25519 signature by the `audit` signer.
    Verify it offline: `ncii audit verify-bundle FILE --public-key KEY`. `?format=pdf` (or
    `Accept: application/pdf`) answers the printable PDF with the signed JSON attached (so
    `ncii audit verify-bundle FILE.pdf` verifies it too), `?format=html` a printable page.
    Nothing personal is in clear in any of them, so no read is recorded."""
    require_role(principal, *AUDITORS)
    chosen = _bundle_format(as_format, accept)
    try:
        document = await app.bundle(case_id, principal.actor)
    except CaseNotFoundError:
        raise not_found() from None
    if chosen == "json":
        return document
    name = bundle_file_name(document).removesuffix(".json")
    if chosen == "pdf":
        # fpdf2 lays the pages out in pure Python: off the event loop
        pdf = await run_in_threadpool(render_pdf, document)
        return Response(
            pdf,
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="{name}.pdf"'},
        )
    return HTMLResponse(
        render_html(document),
        headers={"Content-Disposition": f'inline; filename="{name}.html"'},
    )
