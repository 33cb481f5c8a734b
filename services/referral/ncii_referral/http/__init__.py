"""Referral's HTTP API.

Staff register support partners (``partners``). The case's side (its partner NGO, the centre's
case workers) offers referrals, revokes them and records follow-ups; counsellors (role
``counsellor``, their organisation = the partner's) list, read, accept, decline and complete
the referrals addressed to them and keep notes, and nothing else (``referrals``). Art. 7
reports: the staff view of what is due and late, filing, a known suspect's report; the case's
guidance checklist (``reports``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends
from ncii_events.auth import Principal
from ncii_events.crypto import CaseErasedError
from ncii_events.http import Problem, not_found
from ncii_events.service import app_of, authenticated
from ncii_events.store import ConcurrencyError

from ncii_referral import domain
from ncii_referral.app import NotFoundError, ReferralApp, UnknownPartnerError

referral_app = app_of(ReferralApp)
App = Annotated[ReferralApp, Depends(referral_app)]
Caller = Annotated[Principal, Depends(authenticated)]


@contextlib.contextmanager
def command_problems(what: str = "referral") -> Iterator[None]:
    """How the application's errors read over HTTP: one place for every write."""
    try:
        yield
    except NotFoundError:
        raise not_found(what) from None
    except UnknownPartnerError:
        raise Problem(
            422,
            "Unknown partner",
            "no registered support partner has this id: pick one from GET /v1/partners",
            kind="unknown-partner",
            errors=[{"field": "partner_id", "message": "not a registered partner"}],
        ) from None
    except ConcurrencyError:
        raise Problem(
            409,
            "Conflict",
            "the record changed while this request was processed; reload it and retry",
            kind="concurrent-change",
        ) from None
    except domain.ReferralRuleError as exc:
        title = {403: "Forbidden", 422: "Not allowed for this case"}.get(
            exc.status, "Not allowed in this state"
        )
        raise Problem(exc.status, title, exc.detail, kind=exc.kind) from None
    except CaseErasedError:
        raise Problem(
            409,
            "Not allowed in this case's state",
            "this case's personal data was erased; it takes no new facts",
            kind="case-closed",
        ) from None
