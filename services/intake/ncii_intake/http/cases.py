"""Cases, for partner NGOs and the centre's case workers: open, read, and record what happens."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

import orjson
from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.responses import JSONResponse
from ncii_contracts.base import DomainEvent
from ncii_contracts.intake import AgeGroup, Consents, Contact, HarmCategory, RevealReason
from ncii_events.auth import require_role
from ncii_events.http import Problem, decode_cursor, encode_cursor, not_found
from ncii_events.http.fields import PastTime
from ncii_events.http.limits import KiB, body_limit
from ncii_events.ids import normalise_case_reference
from ncii_events.service import ServiceRoute, runtime_of

from ncii_intake.app import CaseNotFoundError, contact_id, keyed_id, note_id
from ncii_intake.domain import (
    CASE_READERS,
    ERASERS,
    Case,
    CaseStatus,
    format_time,
    sees_personal_data,
    withdrawn_by_role,
    withheld_fields,
)
from ncii_intake.http import App
from ncii_intake.http.bodies import (
    AddNote,
    AssignCase,
    ChangeConsents,
    CloseCase,
    EraseCase,
    LogContact,
    OpenCase,
    RecordLegalAssessment,
    RecordNonConsent,
    RecordOffender,
    RecordPoliceDecision,
    RecordPoliceReport,
    ReportLocation,
    RequestErasure,
    SubmitHashes,
    Withdraw,
)
from ncii_intake.http.views import (
    CaseDetail,
    CaseList,
    detail,
    now,
    summary_item,
)
from ncii_intake.http.writes import Caller, IfMatch, Writer
from ncii_intake.read_models import queries
from ncii_intake.read_models.queries import CaseFilter

router = APIRouter(prefix="/v1", route_class=ServiceRoute)
#: A location is one address and a few names.
LOCATION_BODY_LIMIT = 16 * KiB
#: Up to 1,000 hashes, or a video of about 7,000 frames (two hours at one a second): the
#: event it becomes must fit in one NATS message (1 MB by default; decision 21).
HASHES_BODY_LIMIT = 768 * KiB


@router.post("/cases", status_code=201, tags=["cases"])
async def open_case(body: OpenCase, write: Writer) -> JSONResponse:
    """Open a case. The response shows the victim's case reference and PIN: **once**.

    Pass them to the victim; with them (and no account) they can see the case's status and
    withdraw it. Send an `Idempotency-Key` (a new one per case): retrying with the same key
    returns the same case, reference and PIN; without one the request is refused (428), as
    nothing else tells a retry from a second victim's case.
    """
    key = write.required_key("case")

    def decide(reference: str) -> list[DomainEvent]:
        return Case.open(
            organisation=write.principal.organisation,
            reference=reference,
            age_group=body.age_group,
            harm_categories=body.harm_categories,
            spread_status=body.spread_status,
            channels=body.channels,
            intake_channel=body.intake_channel,
            learned_at=body.learned_at,
            consents=Consents(**body.consents.model_dump()),
            pseudonym=body.pseudonym,
            contact=Contact(**body.contact.model_dump()) if body.contact else None,
            region=body.region,
        )

    async def reveal(state: dict[str, Any]) -> dict[str, Any]:
        if await write.app.keys.is_erased(state["case_id"]):
            # a replay after erasure: the victim's access to the case is gone with it (F9)
            return {"case_id": state["case_id"], "status": "erased", "victim_access": None}
        return {
            **state,
            "victim_access": {
                "reference": state["reference"],
                "pin": write.app.pin_for(state["case_id"]),
                "note": "shown once: give both to the victim; they are not shown again",
            },
        }

    return await write.run(
        body,
        lambda: write.app.open_case(write.principal, key, decide),
        status=201,
        reveal=reveal,
    )


@router.get("/cases", tags=["cases"], response_model=CaseList)
async def list_cases(
    request: Request,
    principal: Caller,
    status: CaseStatus | None = None,
    reference: Annotated[
        str | None,
        Query(
            max_length=40,
            description="the case reference as read aloud: any case, spaces or dashes, "
            "O for 0, I or L for 1",
        ),
    ] = None,
    age_group: AgeGroup | None = None,
    category: HarmCategory | None = None,
    assignee: Annotated[str | None, Query(max_length=64)] = None,
    opened_from: PastTime | None = None,
    opened_before: PastTime | None = None,
    updated_from: PastTime | None = None,
    updated_before: PastTime | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Response:
    """Your organisation's cases (all cases for the centre's case workers), newest first,
    filtered by any of: reference (as read aloud), status, age group, category, assignee,
    opened and updated time (from: inclusive, before: exclusive; filtered on update time,
    the list is ordered by it). Page on with `cursor` (with the same filters)."""
    require_role(principal, *CASE_READERS)
    normalised = None
    if reference is not None:
        try:
            normalised = normalise_case_reference(reference)
        except ValueError as exc:
            raise Problem(
                422,
                "Invalid reference",
                f"{exc}; read it again to the caller (spaces and dashes do not matter)",
                errors=[{"field": "reference", "message": str(exc)}],
            ) from None
    after = None
    if cursor is not None:
        position = decode_cursor(cursor)
        after = (str(position.get("o", "")), str(position.get("c", "")))
    where = CaseFilter(
        status=status,
        reference=normalised,
        age_group=age_group,
        category=category,
        assignee=assignee,
        opened_from=format_time(opened_from) if opened_from else None,
        opened_before=format_time(opened_before) if opened_before else None,
        updated_from=format_time(updated_from) if updated_from else None,
        updated_before=format_time(updated_before) if updated_before else None,
    )
    rows = await queries.list_cases(
        runtime_of(request).engine, principal, limit=limit + 1, after=after, where=where
    )
    more = len(rows) > limit
    rows = rows[:limit]
    at = "updated_at" if where.by_updated else "opened_at"
    next_cursor = encode_cursor({"o": rows[-1][at], "c": rows[-1]["case_id"]}) if more else None
    # plain data in the shape of CaseList (tested against it), not a model per row, encoded
    # by orjson (the stored category lists go out as they are: ``summary_item``)
    page = {"items": [summary_item(r) for r in rows], "next_cursor": next_cursor}
    return Response(orjson.dumps(page), media_type="application/json")


@router.get("/caseload", tags=["cases"])
async def caseload(request: Request, principal: Caller) -> JSONResponse:
    """Open cases per assignee (null: not assigned) among the cases you see."""
    require_role(principal, *CASE_READERS)
    rows = await queries.caseload(runtime_of(request).engine, principal)
    return JSONResponse({"items": rows})


@router.get("/cases/{case_id}", tags=["cases"])
async def get_case(
    case_id: str,
    principal: Caller,
    app: App,
    response: Response,
    reveal: Annotated[
        Literal["personal"] | None,
        Query(description="`personal`: read the personal fields your role gets withheld"),
    ] = None,
    reason: Annotated[
        RevealReason | None, Query(description="with reveal: why you read them (recorded)")
    ] = None,
    ticket: Annotated[
        str | None,
        Query(
            max_length=64,
            pattern=r"^[A-Za-z0-9._:/#-]+$",
            description="with reveal: your ticket or request reference (recorded)",
        ),
    ] = None,
) -> CaseDetail:
    """The case as it stands, what happened so far, and what is pending. `ETag` = its version.

    Partners (their own cases) and case workers read the personal fields (pseudonym, contact,
    locations' addresses). An admin gets them withheld (null, and `personal_data_withheld` says
    how to read them): `?reveal=personal&reason=...` reads them, after recording who read them,
    why, and from where as a `PersonalDataRead` event in the case's log."""
    require_role(principal, *CASE_READERS)
    withheld = not sees_personal_data(principal)
    if withheld and reveal == "personal" and reason is None:
        raise Problem(
            422,
            "Reason required",
            "say why you read this case's personal data: add reason=<one of "
            + ", ".join(get_args(RevealReason))
            + ">; the read is recorded",
            errors=[{"field": "reason", "message": "required with reveal=personal"}],
        )
    try:
        if withheld and reveal == "personal" and reason is not None:
            loaded, history = await app.reveal_personal_data(
                case_id, principal, reason, ticket, "GET /v1/cases/{case_id}"
            )
            withheld = False
        else:
            loaded, history = await app.load_with_history(case_id, principal, decrypt=not withheld)
    except CaseNotFoundError:
        raise not_found() from None
    response.headers["ETag"] = loaded.etag
    hidden = withheld_fields(principal.role, revealed=not withheld)
    return detail(loaded, history, withheld=withheld, hidden=hidden)


@router.post("/cases/{case_id}/non-consent", tags=["cases"])
async def record_non_consent(
    case_id: str, body: RecordNonConsent, write: Writer, if_match: IfMatch = None
) -> JSONResponse:
    """Record the adult's explicit statement that they do not consent to the distribution.
    Until it is recorded an adult case can neither start takedowns nor share hashes."""
    return await write.change(
        case_id,
        body,
        lambda c: c.record_non_consent(body.stated_at, body.method, body.statement),
        if_match=if_match,
    )


@router.post(
    "/cases/{case_id}/locations",
    tags=["cases"],
    openapi_extra=body_limit(LOCATION_BODY_LIMIT),
)
async def report_location(
    case_id: str, body: ReportLocation, write: Writer, if_match: IfMatch = None
) -> JSONResponse:
    """Report where content was found. Each location may become its own takedown. Send an
    `Idempotency-Key` (a new one per location, the same one when you retry): the address is
    personal, so nothing in clear tells a retry from a second location (428 without it)."""
    location_id = keyed_id(
        case_id, write.principal.principal_id, write.required_key("location"), "location"
    )
    return await write.change(
        case_id,
        body,
        lambda c: c.report_location(
            location_id,
            url=body.url,
            platform=body.platform,
            channel_kind=body.channel_kind,
            first_seen_at=body.first_seen_at,
        ),
        if_match=if_match,
    )


@router.post("/cases/{case_id}/hashes", tags=["cases"], openapi_extra=body_limit(HASHES_BODY_LIMIT))
async def submit_hashes(
    case_id: str, body: SubmitHashes, write: Writer, if_match: IfMatch = None
) -> JSONResponse:
    """Submit hashes computed on the victim's own device (`ncii hash FILE --submit CASE`).
    Never an image. PDQ hashes need quality 50 or more. Send an `Idempotency-Key` (the
    hashes are personal, so nothing in clear tells a retry from a second submission: 428
    without it); `ncii hash --submit` sends one."""
    submission_id = keyed_id(
        case_id, write.principal.principal_id, write.required_key("submission"), "submission"
    )
    return await write.change(
        case_id, body, lambda c: c.submit_hashes(submission_id, body.hashes), if_match=if_match
    )


@router.post("/cases/{case_id}/police-report-decision", tags=["cases"])
async def record_police_decision(
    case_id: str, body: RecordPoliceDecision, write: Writer, if_match: IfMatch = None
) -> JSONResponse:
    """The victim's own decision about reporting to the police: recorded, never forced."""
    return await write.change(
        case_id, body, lambda c: c.record_police_decision(body.decision), if_match=if_match
    )


MOVED: dict[int | str, dict[str, Any]] = {
    410: {"description": "moved to the referral service (decision 34)"}
}


@router.post(
    "/cases/{case_id}/mandatory-report",
    tags=["cases"],
    deprecated=True,
    status_code=410,
    responses=MOVED,
)
async def file_mandatory_report(case_id: str, principal: Caller) -> JSONResponse:
    """**Gone** (decision 34): the minor's art. 7 report is the referral service's. Read the
    case's report there with `GET /v1/cases/{case_id}/reports` and record its filing with
    `POST /v1/cases/{case_id}/reports/{report_id}/filing`. Answers 410 and writes nothing."""
    require_role(principal, *CASE_READERS)
    raise Problem(
        410,
        "Moved to the referral service",
        "intake no longer records the art. 7 report: on the referral service, find the "
        f"report with GET /v1/cases/{case_id}/reports, then file it with "
        f"POST /v1/cases/{case_id}/reports/{{report_id}}/filing "
        "(filed_at, authority_region, authority_reference)",
        kind="moved-to-referral",
    )


@router.post("/cases/{case_id}/withdraw", tags=["cases"])
async def withdraw_case(
    case_id: str, write: Writer, command: Annotated[Withdraw | None, Body()] = None
) -> JSONResponse:
    """Final: stops every takedown and removes the case's hashes from matching everywhere."""
    # the body's name is its schema title in the OpenAPI document (kept as it was)
    body = command or Withdraw()
    by = withdrawn_by_role(write.principal.role)
    return await write.change(case_id, body, lambda c: c.withdraw(by, body.reason))


@router.post("/cases/{case_id}/close", tags=["cases"])
async def close_case(
    case_id: str,
    write: Writer,
    command: Annotated[CloseCase | None, Body()] = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Close the case (resolved): not final. Its hashes stay in matching, new sightings and facts
    still reach it, and a re-upload seen by a platform reopens it by itself. To stop matching,
    withdraw it instead."""
    body = command or CloseCase()
    return await write.change(case_id, body, lambda c: c.close(body.reason), if_match=if_match)


@router.post("/cases/{case_id}/reopen", tags=["cases"])
async def reopen_case(case_id: str, write: Writer, if_match: IfMatch = None) -> JSONResponse:
    """Work a closed case again. A withdrawn or erased case is final and cannot be reopened."""
    return await write.change(case_id, None, lambda c: c.reopen(), if_match=if_match)


@router.post("/cases/{case_id}/consents", tags=["cases"])
async def change_consents(
    case_id: str, body: ChangeConsents, write: Writer, if_match: IfMatch = None
) -> JSONResponse:
    """The victim gives or withdraws consents after the opening (one event with those that
    change). Withdrawing `share_hashes` takes the case's hashes out of matching; giving it lets
    hashes be submitted."""
    return await write.change(
        case_id, body, lambda c: c.change_consents(body.changes()), if_match=if_match
    )


@router.post("/cases/{case_id}/spread", tags=["cases"])
async def mark_spread(case_id: str, write: Writer, if_match: IfMatch = None) -> JSONResponse:
    """The content that was only threatened is out (reporting a location does this by itself)."""
    return await write.change(case_id, None, lambda c: c.mark_spread(), if_match=if_match)


@router.post("/cases/{case_id}/erase", tags=["cases"])
async def erase_case(case_id: str, body: EraseCase, write: Writer) -> JSONResponse:
    """Final: destroys the case's key. Its personal data reads as erased for ever; the log and
    its hash chain stay intact; its hashes leave matching. Only a case worker or an admin
    erases, with a reason (recorded with who did it); a partner asks for it with
    `POST /v1/cases/{case_id}/erasure-request`."""
    if write.principal.role == "partner":
        raise Problem(
            403,
            "Forbidden",
            "a partner may not erase a case alone: ask the centre with "
            f"POST /v1/cases/{case_id}/erasure-request; a case worker confirms it",
            kind="erasure-needs-caseworker",
        )
    return await write.run(
        body,
        lambda: write.app.erase(case_id, write.principal, write.key, body.reason),
        roles=ERASERS,
    )


@router.post("/cases/{case_id}/erasure-request", tags=["cases"])
async def request_erasure(case_id: str, body: RequestErasure, write: Writer) -> JSONResponse:
    """A partner asks for the case to be erased (an event); a case worker confirms it with
    `POST /v1/cases/{case_id}/erase`."""
    at = now()
    return await write.change(
        case_id, body, lambda c: c.request_erasure("partner", body.reason, at), roles=("partner",)
    )


@router.post("/cases/{case_id}/legal-assessment", tags=["cases"])
async def record_legal_assessment(
    case_id: str, body: RecordLegalAssessment, write: Writer, if_match: IfMatch = None
) -> JSONResponse:
    """A case worker's assessment: the legal categories, how the image was obtained, and what
    it shows against art. 10 para 8 (the eligibility check). The case then shows whether
    prosecution needs the victim's complaint, and what follows from it."""
    return await write.change(
        case_id,
        body,
        lambda c: c.record_legal_assessment(body.categories, body.how_obtained, body.depicts),
        if_match=if_match,
        roles=("caseworker",),
    )


@router.post("/cases/{case_id}/offender", tags=["cases"])
async def record_offender(
    case_id: str, body: RecordOffender, write: Writer, if_match: IfMatch = None
) -> JSONResponse:
    """What is known of the offender (personal: encrypted, erased with the case). Send an
    `Idempotency-Key`: the details are personal, so nothing in clear tells a retry from a new
    record (428 without it)."""
    write.required_key("offender record")
    return await write.change(
        case_id,
        body,
        lambda c: c.record_offender(
            known=body.known,
            account_ids=body.account_ids,
            ip_addresses=body.ip_addresses,
            crime_group=body.crime_group,
            description=body.description,
        ),
        if_match=if_match,
    )


@router.post("/cases/{case_id}/police-report", tags=["cases"])
async def record_police_report(
    case_id: str, body: RecordPoliceReport, write: Writer, if_match: IfMatch = None
) -> JSONResponse:
    """Where and when the victim reported to the police, and whether seizure of the
    offender's devices was requested. Send an `Idempotency-Key`: the station and number are
    personal, so nothing in clear tells a retry from a new record (428 without it)."""
    write.required_key("police report record")
    return await write.change(
        case_id,
        body,
        lambda c: c.record_police_report(
            station=body.station,
            report_number=body.report_number,
            reported_on=body.reported_on,
            seizure_requested=body.seizure_requested,
        ),
        if_match=if_match,
    )


@router.post("/cases/{case_id}/assignee", tags=["cases"])
async def assign_case(
    case_id: str, request: Request, body: AssignCase, write: Writer, if_match: IfMatch = None
) -> JSONResponse:
    """Assign the case to a worker of the organisation that owns it (null: unassign)."""
    worker = (
        await queries.principal(runtime_of(request).engine, body.assignee)
        if body.assignee
        else None
    )
    return await write.change(
        case_id,
        body,
        lambda c: c.assign(
            body.assignee,
            worker.organisation if worker else None,
            worker.role if worker else None,
        ),
        if_match=if_match,
    )


@router.post("/cases/{case_id}/notes", tags=["cases"])
async def add_note(case_id: str, body: AddNote, write: Writer) -> JSONResponse:
    """A case note (personal: encrypted, erased with the case). Send an `Idempotency-Key`
    (a new one per note, the same one when you retry): a note has nothing else by which a
    retry could be told from a second note, so a note without it is refused (428)."""
    note = note_id(case_id, write.principal.principal_id, write.required_key("note"))
    return await write.change(case_id, body, lambda c: c.add_note(note, body.text))


@router.post("/cases/{case_id}/contacts", tags=["cases"])
async def log_contact(case_id: str, body: LogContact, write: Writer) -> JSONResponse:
    """One contact with the victim in the contact log (its summary is personal). A contact is
    its time, channel and direction: the same three again is the same contact (a retry), and
    records nothing new. With an `Idempotency-Key`, the key says which contact it is instead
    (two contacts at the same second are then two)."""
    contact = contact_id(
        case_id,
        write.principal.principal_id,
        write.key,
        at=format_time(body.at),
        channel=body.channel,
        direction=body.direction,
    )
    return await write.change(
        case_id,
        body,
        lambda c: c.log_contact(
            contact,
            at=body.at,
            channel=body.channel,
            direction=body.direction,
            summary=body.summary,
        ),
    )


@router.get("/mandatory-reports", tags=["cases"], deprecated=True, status_code=410, responses=MOVED)
async def list_mandatory_reports(principal: Caller) -> JSONResponse:
    """**Gone** (decision 34): the reports due and overdue are the referral service's staff
    view, `GET /v1/reports[?status=due|overdue]`. Answers 410."""
    require_role(principal, *CASE_READERS)
    raise Problem(
        410,
        "Moved to the referral service",
        "the art. 7 reports due and overdue are listed by the referral service: "
        "GET /v1/reports (status=due or overdue), as a case worker or admin",
        kind="moved-to-referral",
    )
