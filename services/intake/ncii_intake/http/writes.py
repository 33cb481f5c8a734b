"""What every write to a case shares: the caller must be a partner or a case worker, the
request is idempotent under its key, and the case's errors read as problem documents. A route
then says only which decision it asks of the case."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header
from fastapi.responses import JSONResponse
from ncii_events.auth import Principal, require_role
from ncii_events.crypto import CaseErasedError
from ncii_events.http import Idempotent, IdempotentWrite, Problem, not_found
from ncii_events.http.idempotency import Reveal
from ncii_events.http.rate_limits import CASE_WRITES, Limits, RateLimits
from ncii_events.service import authenticated
from ncii_events.store import ConcurrencyError
from pydantic import BaseModel

from ncii_intake.app import CaseNotFoundError, Decision, IntakeApp, LoadedCase, StaleVersionError
from ncii_intake.domain import CASE_WRITERS, AssigneeError, CaseRuleError
from ncii_intake.http import App
from ncii_intake.http.views import case_state

Caller = Annotated[Principal, Depends(authenticated)]
IfMatch = Annotated[str | None, Header(alias="If-Match", description="the ETag you last read")]


@contextlib.contextmanager
def case_problems() -> Iterator[None]:
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
    except AssigneeError as exc:
        raise Problem(
            422, "Not a worker of this case's organisation", exc.detail, kind=exc.kind
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


@dataclass(frozen=True)
class CaseWrite:
    """A write by a partner or case worker (the FastAPI dependency ``Writer`` builds it)."""

    app: IntakeApp
    principal: Principal
    idempotent: Idempotent
    limits: RateLimits

    @property
    def key(self) -> str | None:
        return self.idempotent.key

    def required_key(self, what: str) -> str:
        """The Idempotency-Key of a write that has no other way to tell its retry from a second
        fact (a note, a location, a submission, a new case): without it, 428 saying to send one
        (after the role check, so a caller who may not write learns nothing more)."""
        require_role(self.principal, *CASE_WRITERS)
        return self.idempotent.required(what)

    async def run(
        self,
        body: BaseModel | None,
        action: Callable[[], Awaitable[LoadedCase]],
        *,
        status: int = 200,
        reveal: Reveal | None = None,
        roles: tuple[str, ...] = CASE_WRITERS,
    ) -> JSONResponse:
        """Role check, then ``action`` once under the Idempotency-Key; answers the case's state."""
        # checked here, not in the dependency, so an invalid body is a 422 before any 403
        require_role(self.principal, *roles)
        self.limits.take(self.principal.principal_id, CASE_WRITES)

        async def handle() -> tuple[int, dict[str, Any]]:
            with case_problems():
                loaded = await action()
            return status, case_state(loaded)

        return await self.idempotent.run(self.principal.principal_id, body, handle, reveal=reveal)

    async def change(
        self,
        case_id: str,
        body: BaseModel | None,
        decide: Decision,
        *,
        if_match: str | None = None,
        roles: tuple[str, ...] = CASE_WRITERS,
    ) -> JSONResponse:
        """Load the case, let ``decide`` build its events, append them."""
        return await self.run(
            body,
            lambda: self.app.change(
                case_id,
                self.principal,
                decide,
                actor_principal=self.principal,
                if_match=if_match,
                idempotency_key=self.key,
            ),
            roles=roles,
        )


async def case_write(
    principal: Caller, idempotent: IdempotentWrite, app: App, limits: Limits
) -> CaseWrite:
    return CaseWrite(app, principal, idempotent, limits)


Writer = Annotated[CaseWrite, Depends(case_write)]
