"""Banks, for case workers and admins: settings, imports and exports of lists in
python-threatexchange's plain format, and the matcher's status."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from ncii_events.auth import require_role
from ncii_events.http import IdempotentWrite, Problem, not_found
from ncii_events.http.limits import body_limit
from ncii_events.service import ServiceRoute
from pydantic import BaseModel

from ncii_hashmatch import domain
from ncii_hashmatch.http import BANK_STAFF, CASE_BANK_READERS, App, Caller, command_problems
from ncii_hashmatch.http.bodies import BankSettingsIn, PlatformProgrammesIn
from ncii_hashmatch.http.views import BankList, bank_out
from ncii_hashmatch.read_models import queries

router = APIRouter(prefix="/v1", route_class=ServiceRoute)
BankName = Annotated[str, Path(max_length=64, description="e.g. STOPNCII_2026 or ORG_...")]
MAX_IMPORT_BYTES = 96 * 1024 * 1024
EXPORT_PAGE = 20_000


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


@router.get("/banks", tags=["banks"])
async def list_banks(state: App, principal: Caller) -> BankList:
    """Every bank: partner organisations' case banks (`ORG_...`) and imported lists, with their
    settings, the id platforms see, and how many hashes are live."""
    require_role(principal, *BANK_STAFF)
    rows = await queries.banks(state.engine)
    return BankList(items=[bank_out(state.tokens, r) for r in rows])


@router.put("/banks/{name}", tags=["banks"])
async def configure_bank(
    state: App,
    name: BankName,
    body: BankSettingsIn,
    principal: Caller,
    idempotent: IdempotentWrite,
) -> JSONResponse:
    """Set a bank's settings (all of them): enabled, the PDQ distance threshold (inclusive,
    default 31), matching of rotations/flips, and vPDQ's frame shares; for a new list bank,
    its programme (`adults` or `child_protection`; fixed once the bank exists: 409)."""
    require_role(principal, *BANK_STAFF)
    _check_bank_name(domain.bank_name_error(name))
    settings = body.settings()

    async def handle() -> tuple[int, dict[str, Any]]:
        with command_problems():
            recorded = await state.configure_bank(
                name, settings, principal, idempotent.key, body.programme
            )
        return 200, {
            "name": name,
            "public_id": state.tokens.bank_id(name),
            **body.model_dump(),
            "programme": recorded.programme,
        }

    return await idempotent.run(principal.principal_id, body, handle)


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


def _parsed(text: str) -> domain.ParsedList:
    """The list, or a 413/422 that says what to fix (every bad line, up to a limit)."""
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
    return parsed


class _ListDigest(BaseModel):
    """What a retried import is recognised by: the list's digest, not its text."""

    sha256: str


@router.post(
    "/banks/{name}/import",
    tags=["banks"],
    openapi_extra={
        **body_limit(MAX_IMPORT_BYTES),
        "requestBody": {
            "required": True,
            "content": {"text/plain": {"schema": {"type": "string"}, "example": "pdq f8f8...\n"}},
        },
    },
)
async def import_list(
    request: Request,
    state: App,
    name: BankName,
    principal: Caller,
    idempotent: IdempotentWrite,
    mode: Annotated[Literal["add", "replace"], Query()] = "add",
) -> JSONResponse:
    """Import a hash list in python-threatexchange's plain format: one `pdq <64 hex>` or
    `video_md5 <32 hex>` per line (blank lines and `# comments` are skipped). All lines must
    be valid, or nothing is imported and the 422 lists each bad line. `mode=replace`: the bank
    then holds exactly this list (the rest become removals). Hashes already in the bank, or in
    the negative bank, are not added twice. Send an `Idempotency-Key` (428 without it): the
    same list may be imported again on purpose (a replace after another list), so only the
    key tells a retry from a second import."""
    require_role(principal, *BANK_STAFF)
    idempotent.required("import")
    _check_bank_name(domain.list_bank_error(name))
    text = await _read_text(request)
    parsed = _parsed(text)

    async def handle() -> tuple[int, dict[str, Any]]:
        pairs = [(h.algorithm, h.value) for h in parsed.hashes]
        present = await queries.present_in_bank(state.engine, name, pairs)
        result = await state.import_list(name, parsed, mode, principal, idempotent.key)
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

    # the mode is part of the request: the same list added or replacing is another request
    this_mode = dataclasses.replace(idempotent, path=f"{idempotent.path}?mode={mode}")
    digest = _ListDigest(sha256=hashlib.sha256(text.encode()).hexdigest())
    return await this_mode.run(principal.principal_id, digest, handle)


@router.get(
    "/banks/{name}/export",
    tags=["banks"],
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
async def export_bank(state: App, name: BankName, principal: Caller) -> Response:
    """A bank's live hashes in python-threatexchange's plain format (`pdq ...`, `video_md5 ...`),
    for HMA's file exchange. Image MD5s and vPDQ have no signal type there: the count left out
    is in the `X-Ncii-Not-Exported` header. A case bank (`ORG_...`) holds victims' hashes,
    personal data (decision 26): only a case worker exports it (decision 56)."""
    require_role(principal, *BANK_STAFF)
    if domain.is_case_bank(name) and principal.role not in CASE_BANK_READERS:
        raise Problem(
            403,
            "Personal data",
            "a case bank holds victims' hashes, which are personal data: its export is a case "
            "worker's; an admin exports list banks only",
        )
    skipped = await queries.not_exported(state.engine, name)
    if skipped is None:
        raise not_found("bank")

    async def lines() -> AsyncIterator[bytes]:
        async for rows in queries.export_pages(state.engine, name, EXPORT_PAGE):
            out = [domain.export_line(r.algorithm, r.media, r.value) for r in rows]
            yield "".join(f"{line}\n" for line in out if line).encode()

    return StreamingResponse(
        lines(),
        media_type="text/plain; charset=utf-8",
        headers={
            "X-Ncii-Not-Exported": str(skipped),
            "Content-Disposition": f'attachment; filename="{name}.txt"',
        },
    )


PlatformName = Annotated[
    str, Path(min_length=1, max_length=100, description="the platform's organisation")
]


@router.get("/platforms/{organisation}/programmes", tags=["banks"])
async def get_platform_programmes(
    state: App, organisation: PlatformName, principal: Caller
) -> JSONResponse:
    """Which hash-sharing programmes a platform (the organisation of its `platform` keys)
    receives in its look-ups and its delta feed; `recorded: false` is the default (adults)."""
    require_role(principal, *BANK_STAFF)
    programmes, recorded = await queries.platform_programmes(state.engine, organisation)
    return JSONResponse(
        {"platform": organisation, "programmes": list(programmes), "recorded": recorded}
    )


@router.put("/platforms/{organisation}/programmes", tags=["banks"])
async def set_platform_programmes(
    state: App,
    organisation: PlatformName,
    body: PlatformProgrammesIn,
    principal: Caller,
    idempotent: IdempotentWrite,
) -> JSONResponse:
    """Subscribe a platform to hash-sharing programmes (all of them at once: this replaces its
    subscription). `child_protection` banks hold minors' hashes; `adults` banks adults'. Its
    look-ups then match, and its delta feed lists, only those programmes' banks; a feed
    cursor issued before the change starts the list again (`reset: true`)."""
    require_role(principal, *BANK_STAFF)

    async def handle() -> tuple[int, dict[str, Any]]:
        event = await state.set_platform_programmes(
            organisation, body.programmes, principal, idempotent.key
        )
        return 200, {"platform": organisation, "programmes": event.programmes, "recorded": True}

    return await idempotent.run(principal.principal_id, body, handle)


@router.get("/matcher/status", tags=["banks"])
async def matcher_status(state: App, principal: Caller) -> JSONResponse:
    """The matcher's index sizes, cursors, restore time and look-up counts (no hashes)."""
    require_role(principal, *BANK_STAFF)
    matcher = state.matcher
    return JSONResponse({**matcher.status(), "pending_changes": await matcher.pending()})
