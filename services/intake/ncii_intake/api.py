"""Intake's HTTP API: what partner NGOs and the centre's case workers call, and the victim's
own access with a case reference and PIN. Handlers build a command and hand it on."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from ncii_events.auth import FailedAuthThrottle, Principal, require_role
from ncii_events.crypto import CaseErasedError
from ncii_events.hashes import PDQ_MIN_QUALITY
from ncii_events.http import Problem, decode_cursor, encode_cursor, not_found, request_fingerprint
from ncii_events.ids import normalise_case_reference, uuid7
from ncii_events.registry import DomainEvent
from ncii_events.service import ServiceRuntime, authenticated, runtime_of
from ncii_events.store import ConcurrencyError, RecordedEvent
from pydantic import BaseModel

from ncii_intake import projections
from ncii_intake.commands import (
    FileMandatoryReport,
    OpenCase,
    RecordNonConsent,
    RecordPoliceDecision,
    ReportLocation,
    SubmitHashes,
    VictimAccess,
    Withdraw,
    utc_text,
)
from ncii_intake.domain import Case, CaseRuleError
from ncii_intake.events import (
    CaseOpened,
    HashesSubmitted,
    LocationReported,
    MandatoryReportFiled,
    NonConsentRecorded,
    PoliceReportDecisionRecorded,
    SubmittedHash,
    WithdrawnBy,
)
from ncii_intake.handlers import (
    CASE_READERS,
    CASE_WRITERS,
    CaseNotFoundError,
    IntakeHandlers,
    StaleVersionError,
    etag,
)

router = APIRouter(prefix="/v1")
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", description="retrying with the same key is a no-op"),
]
IfMatch = Annotated[str | None, Header(alias="If-Match", description="the ETag you last read")]
Caller = Annotated[Principal, Depends(authenticated)]
VICTIM_THROTTLE = FailedAuthThrottle(limit=10, window=300.0)


def handlers(runtime: ServiceRuntime[Any]) -> IntakeHandlers:
    app = runtime.app  # built by the spec's app factory (main.py)
    if not isinstance(app, IntakeHandlers):
        raise RuntimeError("intake's application state is not built")
    return app


class CaseSummary(BaseModel):
    case_id: str
    reference: str
    status: str
    age_group: str
    harm_categories: list[str]
    spread_status: str
    intake_channel: str
    learned_at: str
    opened_at: str
    mandatory_report_due_at: str | None
    mandatory_report_filed_at: str | None
    locations: int
    hashes: int


class CaseList(BaseModel):
    items: list[CaseSummary]
    next_cursor: str | None


class TimelineEntry(BaseModel):
    seq: int
    type: str
    occurred_at: str
    actor_role: str
    actor_organisation: str


class CaseDetail(BaseModel):
    case_id: str
    reference: str
    organisation: str
    status: str
    age_group: str
    pseudonym: str | None
    contact: dict[str, Any] | None
    personal_data_erased: bool
    consents: dict[str, Any]
    learned_at: str
    opened_at: str
    statement_recorded_at: str | None
    mandatory_report: dict[str, Any] | None
    locations: list[dict[str, Any]]
    hashes_submitted: int
    pending: list[str]
    timeline: list[TimelineEntry]
    version: int


def _now() -> datetime:
    return datetime.now(UTC)


def _summary(row: dict[str, Any]) -> CaseSummary:
    return CaseSummary(
        case_id=row["case_id"],
        reference=row["reference"],
        status=row["status"],
        age_group=row["age_group"],
        harm_categories=json.loads(row["harm_categories"]),
        spread_status=row["spread_status"],
        intake_channel=row["intake_channel"],
        learned_at=row["learned_at"],
        opened_at=row["opened_at"],
        mandatory_report_due_at=row["report_due_at"],
        mandatory_report_filed_at=row["report_filed_at"],
        locations=row["locations"],
        hashes=row["hashes"],
    )


def _detail(case: Case, history: Sequence[RecordedEvent]) -> CaseDetail:
    pseudonym: str | None = None
    contact: dict[str, Any] | None = None
    erased = False
    locations: list[dict[str, Any]] = []
    for recorded in history:
        ev = recorded.event
        erased = erased or bool(recorded.erased_fields)
        if isinstance(ev, CaseOpened):
            pseudonym = ev.pseudonym
            contact = ev.contact.model_dump() if ev.contact else None
        elif isinstance(ev, LocationReported):
            locations.append(
                {
                    "location_id": ev.location_id,
                    "platform": ev.platform,
                    "channel_kind": ev.channel_kind,
                    "first_seen_at": ev.first_seen_at,
                    "url": ev.url,
                    "reported_at": recorded.envelope.occurred_at,
                }
            )
    now = _now()
    report = None
    if case.is_minor:
        report = {
            "due_at": case.mandatory_report_due_at,
            "filed_at": case.mandatory_report_filed_at,
            "state": case.mandatory_report_state(now),
        }
    return CaseDetail(
        case_id=case.case_id,
        reference=case.reference,
        organisation=case.organisation,
        status=case.status,
        age_group=case.age_group,
        pseudonym=pseudonym,
        contact=contact,
        personal_data_erased=erased or case.erased_at is not None,
        consents=case.consents.model_dump(),
        learned_at=case.learned_at,
        opened_at=case.opened_at,
        statement_recorded_at=case.statement_recorded_at,
        mandatory_report=report,
        locations=locations,
        hashes_submitted=case.hashes_submitted,
        pending=case.pending(now),
        timeline=[
            TimelineEntry(
                seq=r.seq,
                type=r.type,
                occurred_at=r.envelope.occurred_at,
                actor_role=r.envelope.actor.role,
                actor_organisation=r.envelope.actor.organisation,
            )
            for r in history
        ],
        version=case.version.seq,
    )


def _case_state(case: Case) -> dict[str, Any]:
    """What a write returns and what may be kept for an idempotent replay: no personal data."""
    return {
        "case_id": case.case_id,
        "reference": case.reference,
        "status": case.status,
        "version": case.version.seq,
        "pending": case.pending(_now()),
    }


@contextlib.contextmanager
def _case_problems() -> Iterator[None]:
    """How a case's errors read over HTTP: one place for every write."""
    try:
        yield
    except CaseNotFoundError:
        raise not_found() from None
    except StaleVersionError as exc:
        raise Problem(
            412,
            "Precondition failed",
            f"the case changed since you read it (now {exc.current}); reload and retry",
        ) from None
    except ConcurrencyError:
        raise Problem(
            409,
            "Conflict",
            "the case changed while this request was processed; reload it and retry",
            kind="concurrent-change",
        ) from None
    except CaseRuleError as exc:
        raise Problem(409, "Not allowed in this case's state", exc.detail, kind=exc.kind) from None
    except CaseErasedError:
        raise Problem(
            409,
            "Not allowed in this case's state",
            "this case's personal data was erased; it takes no new facts",
            kind="case-closed",
        ) from None


async def _write(
    request: Request,
    principal: Principal,
    body: BaseModel | None,
    action: Callable[[IntakeHandlers], Awaitable[Case]],
    *,
    idempotency_key: str | None,
) -> JSONResponse:
    """A write by a partner or case worker: role check, idempotency, errors as problems."""
    require_role(principal, *CASE_WRITERS)
    runtime = runtime_of(request)
    intake = handlers(runtime)

    async def handle() -> tuple[int, dict[str, Any]]:
        with _case_problems():
            case = await action(intake)
        return 200, _case_state(case)

    fingerprint = request_fingerprint(
        request.method, request.url.path, body.model_dump(mode="json") if body else None
    )
    return await runtime.idempotency.run(
        principal=principal.principal_id,
        key=idempotency_key,
        fingerprint=fingerprint,
        handler=handle,
    )


async def _run_change(
    request: Request,
    principal: Principal,
    case_id: str,
    body: BaseModel | None,
    decide: Callable[[Case], Sequence[DomainEvent]],
    *,
    idempotency_key: str | None,
    if_match: str | None = None,
) -> JSONResponse:
    return await _write(
        request,
        principal,
        body,
        lambda intake: intake.change(
            case_id,
            principal,
            decide,
            actor_principal=principal,
            if_match=if_match,
            idempotency_key=idempotency_key,
        ),
        idempotency_key=idempotency_key,
    )


# -- cases ----------------------------------------------------------------------------------------


@router.post("/cases", status_code=201, tags=["cases"])
async def open_case(
    request: Request,
    command: OpenCase,
    principal: Caller,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Open a case. The response shows the victim's case reference and PIN: **once**.

    Pass them to the victim; with them (and no account) they can see the case's status and
    withdraw it. Retrying with the same `Idempotency-Key` returns the same case, reference and PIN.
    """
    require_role(principal, *CASE_WRITERS)
    runtime = runtime_of(request)
    intake = handlers(runtime)

    async def handle() -> tuple[int, dict[str, Any]]:
        try:
            case = await intake.open_case(command, principal, idempotency_key)
        except ConcurrencyError:
            # the same key raced its twin: the twin's case is the answer
            if idempotency_key is None:
                raise
            case = await intake.load(intake.case_id_for_key(principal, idempotency_key), principal)
        return 201, _case_state(case)

    async def reveal(body: dict[str, Any]) -> dict[str, Any]:
        return {
            **body,
            "victim_access": {
                "reference": body["reference"],
                "pin": intake.pin_for(body["case_id"]),
                "note": "shown once: give both to the victim; they are not shown again",
            },
        }

    fingerprint = request_fingerprint("POST", "/v1/cases", command.model_dump(mode="json"))
    return await runtime.idempotency.run(
        principal=principal.principal_id,
        key=idempotency_key,
        fingerprint=fingerprint,
        handler=handle,
        reveal=reveal,
    )


@router.get("/cases", tags=["cases"])
async def list_cases(
    request: Request,
    principal: Caller,
    status: Literal["awaiting_statement", "active", "withdrawn", "erased"] | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> CaseList:
    """Your organisation's cases (all cases for the centre's case workers), newest first."""
    require_role(principal, *CASE_READERS)
    after = None
    if cursor is not None:
        position = decode_cursor(cursor)
        after = (str(position.get("o", "")), str(position.get("c", "")))
    rows = await projections.list_cases(
        runtime_of(request).engine, principal, status=status, limit=limit + 1, after=after
    )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = (
        encode_cursor({"o": rows[-1]["opened_at"], "c": rows[-1]["case_id"]}) if more else None
    )
    return CaseList(items=[_summary(r) for r in rows], next_cursor=next_cursor)


@router.get("/cases/{case_id}", tags=["cases"])
async def get_case(
    request: Request, case_id: str, principal: Caller, response: Response
) -> CaseDetail:
    """The case as it stands, what happened so far, and what is pending. `ETag` = its version."""
    require_role(principal, *CASE_READERS)
    intake = handlers(runtime_of(request))
    try:
        case, history = await intake.load_with_history(case_id, principal, decrypt=True)
    except CaseNotFoundError:
        raise not_found() from None
    response.headers["ETag"] = etag(case)
    return _detail(case, history)


@router.post("/cases/{case_id}/non-consent", tags=["cases"])
async def record_non_consent(
    request: Request,
    case_id: str,
    command: RecordNonConsent,
    principal: Caller,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Record the adult's explicit statement that they do not consent to the distribution.
    Until it is recorded an adult case can neither start takedowns nor share hashes."""
    event = NonConsentRecorded(
        stated_at=utc_text(command.stated_at), method=command.method, statement=command.statement
    )
    return await _run_change(
        request,
        principal,
        case_id,
        command,
        lambda c: c.record_non_consent(event),
        idempotency_key=idempotency_key,
        if_match=if_match,
    )


@router.post("/cases/{case_id}/locations", tags=["cases"])
async def report_location(
    request: Request,
    case_id: str,
    command: ReportLocation,
    principal: Caller,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Report where content was found. Each location may become its own takedown."""
    event = LocationReported(
        location_id=str(uuid7()),
        platform=command.platform,
        channel_kind=command.channel_kind,
        first_seen_at=utc_text(command.first_seen_at) if command.first_seen_at else None,
        url=command.url,
    )
    return await _run_change(
        request,
        principal,
        case_id,
        command,
        lambda c: c.report_location(event),
        idempotency_key=idempotency_key,
        if_match=if_match,
    )


@router.post("/cases/{case_id}/hashes", tags=["cases"])
async def submit_hashes(
    request: Request,
    case_id: str,
    command: SubmitHashes,
    principal: Caller,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Submit hashes computed on the victim's own device (`ncii hash FILE --submit CASE`).
    Never an image. PDQ hashes need quality 50 or more."""

    def decide(case: Case) -> Sequence[DomainEvent]:
        hashes = [
            SubmittedHash(
                algorithm=item.algorithm,
                value=item.value,
                media=item.media,
                quality=item.quality,
                dihedral=item.dihedral,
                frames=(
                    [f.value for f in item.frames if f.quality >= PDQ_MIN_QUALITY]
                    if item.frames
                    else None
                ),
            )
            for item in command.hashes
        ]
        event = HashesSubmitted(
            submission_id=str(uuid7()),
            organisation=case.organisation,
            age_group=case.age_group,
            hashes=hashes,
        )
        return case.submit_hashes(event)

    return await _run_change(
        request,
        principal,
        case_id,
        command,
        decide,
        idempotency_key=idempotency_key,
        if_match=if_match,
    )


@router.post("/cases/{case_id}/police-report-decision", tags=["cases"])
async def record_police_decision(
    request: Request,
    case_id: str,
    command: RecordPoliceDecision,
    principal: Caller,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    """The victim's own decision about reporting to the police: recorded, never forced."""
    event = PoliceReportDecisionRecorded(decision=command.decision)
    return await _run_change(
        request,
        principal,
        case_id,
        command,
        lambda c: c.record_police_decision(event),
        idempotency_key=idempotency_key,
        if_match=if_match,
    )


@router.post("/cases/{case_id}/mandatory-report", tags=["cases"])
async def file_mandatory_report(
    request: Request,
    case_id: str,
    command: FileMandatoryReport,
    principal: Caller,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Record that a minor's case was reported to the local authority (art. 7, 24 hours)."""
    event = MandatoryReportFiled(
        filed_at=utc_text(command.filed_at),
        authority=command.authority,
        authority_reference=command.authority_reference,
    )
    return await _run_change(
        request,
        principal,
        case_id,
        command,
        lambda c: c.file_mandatory_report(event),
        idempotency_key=idempotency_key,
        if_match=if_match,
    )


@router.post("/cases/{case_id}/withdraw", tags=["cases"])
async def withdraw_case(
    request: Request,
    case_id: str,
    principal: Caller,
    command: Annotated[Withdraw | None, Body()] = None,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Final: stops every takedown and removes the case's hashes from matching everywhere."""
    command = command or Withdraw()
    by: WithdrawnBy = "caseworker" if principal.role == "caseworker" else "partner"
    return await _run_change(
        request,
        principal,
        case_id,
        command,
        lambda c: c.withdraw(by, command.reason),
        idempotency_key=idempotency_key,
    )


@router.post("/cases/{case_id}/erase", tags=["cases"])
async def erase_case(
    request: Request,
    case_id: str,
    principal: Caller,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Final: destroys the case's key. Its personal data reads as erased for ever; the log and
    its hash chain stay intact; its hashes leave matching."""
    return await _write(
        request,
        principal,
        None,
        lambda intake: intake.erase(case_id, principal, idempotency_key),
        idempotency_key=idempotency_key,
    )


@router.get("/mandatory-reports", tags=["cases"])
async def list_mandatory_reports(request: Request, principal: Caller) -> JSONResponse:
    """Minors' cases whose report to the local authority is due or late (art. 7: 24 hours)."""
    require_role(principal, *CASE_READERS)
    rows = await projections.mandatory_reports(runtime_of(request).engine, principal, _now())
    return JSONResponse(
        {
            "items": [
                {
                    "case_id": r["case_id"],
                    "reference": r["reference"],
                    "learned_at": r["learned_at"],
                    "due_at": r["report_due_at"],
                    "state": r["report_state"],
                }
                for r in rows
            ]
        }
    )


# -- the victim's own access ---------------------------------------------------------------


async def _victim_case_id(request: Request, access: VictimAccess) -> str:
    """The case the reference and PIN open, or 401 (the same for either being wrong)."""
    runtime = runtime_of(request)
    intake = handlers(runtime)
    client = request.client.host if request.client else "unknown"
    VICTIM_THROTTLE.check(client)
    wrong = Problem(
        401, "Unauthorized", "the case reference or PIN is not right; check both and retry"
    )
    try:
        reference = normalise_case_reference(access.reference)
    except ValueError:
        VICTIM_THROTTLE.failed(client)
        raise wrong from None
    VICTIM_THROTTLE.check(reference)
    case_id = await projections.case_id_for_reference(runtime.engine, reference)
    if case_id is None or not intake.pin_matches(case_id, access.pin):
        VICTIM_THROTTLE.failed(client)
        VICTIM_THROTTLE.failed(reference)
        raise wrong
    return case_id


class VictimView(BaseModel):
    reference: str
    status: str
    opened_at: str
    steps: list[dict[str, str]]


_VICTIM_STEPS = {
    "CaseOpened": "your case was opened",
    "NonConsentRecorded": "your statement that you do not consent was recorded",
    "LocationReported": "a place where the content was found was recorded",
    "HashesSubmitted": "fingerprints (hashes) of the images were shared for blocking",
    "PoliceReportDecisionRecorded": "your decision about reporting to the police was recorded",
    "MandatoryReportFiled": "the case was reported to the authority, as the law requires",
    "CaseWithdrawn": "the case was withdrawn",
    "CaseErased": "your personal data was erased",
}


@router.post("/victim/status", tags=["victim"])
async def victim_status(request: Request, access: VictimAccess) -> VictimView:
    """With the case reference and PIN (no account): the case's status and its steps so far."""
    case_id = await _victim_case_id(request, access)
    intake = handlers(runtime_of(request))
    case, events = await intake.load_with_history(case_id, None, decrypt=False)
    history = [e for e in events if e.envelope.aggregate == "case"]
    return VictimView(
        reference=case.reference,
        status=case.status,
        opened_at=case.opened_at,
        steps=[
            {"at": r.envelope.occurred_at, "what": _VICTIM_STEPS.get(r.type, r.type)}
            for r in history
        ],
    )


@router.post("/victim/withdraw", tags=["victim"])
async def victim_withdraw(request: Request, access: VictimAccess) -> JSONResponse:
    """With the case reference and PIN: withdraw the case. Final."""
    intake = handlers(runtime_of(request))
    case = await intake.load(await _victim_case_id(request, access))
    victim = Principal(principal_id="victim", organisation=case.organisation, role="victim")
    with _case_problems():
        updated = await intake.change(
            case.case_id,
            None,
            lambda c: c.withdraw("victim", "victim_request"),
            actor_principal=victim,
        )
    return JSONResponse({"reference": updated.reference, "status": updated.status})
