"""Takedown's HTTP API.

Partners and case workers of the case's organisation record evidence, assign a location's
platform, confirm a web-form or e-mail notice as sent, escalate an overdue one, and read a
case's takedowns with their timelines (``cases``). Platforms (role ``platform``) list their own
open notices and acknowledge, mark removed or refuse them (``notices``); another platform's
notice is 404. Staff register platforms and watch deliveries (``platforms``).
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

from ncii_takedown import domain
from ncii_takedown.app import NotFoundError, StaleVersionError, TakedownApp, UnknownPlatformError

takedown_app = app_of(TakedownApp)
"""The application of this process: the one place routes reach it from."""

App = Annotated[TakedownApp, Depends(takedown_app)]
Caller = Annotated[Principal, Depends(authenticated)]


@contextlib.contextmanager
def command_problems(what: str = "takedown") -> Iterator[None]:
    """How the application's errors read over HTTP: one place for every write."""
    try:
        yield
    except NotFoundError:
        raise not_found(what) from None
    except UnknownPlatformError:
        raise Problem(
            422,
            "Unknown platform",
            "no registered platform has this id: register it first (POST /v1/platforms) or "
            "pick one from GET /v1/platforms",
            kind="unknown-platform",
            errors=[{"field": "platform_id", "message": "not a registered platform"}],
        ) from None
    except StaleVersionError as exc:
        raise Problem(
            412, "Precondition failed", f"the takedown changed since you read it (now {exc})"
        ) from None
    except ConcurrencyError:
        raise Problem(
            409,
            "Conflict",
            "the takedown changed while this request was processed; reload it and retry",
            kind="concurrent-change",
        ) from None
    except domain.TakedownRuleError as exc:
        raise Problem(
            409, "Not allowed in this takedown's state", exc.detail, kind=exc.kind
        ) from None
    except CaseErasedError:
        raise Problem(
            409,
            "Not allowed in this case's state",
            "this case's personal data was erased; it takes no new facts",
            kind="case-closed",
        ) from None
