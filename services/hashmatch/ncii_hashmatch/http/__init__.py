"""Hashmatch's HTTP API.

Platforms (role ``platform``) look up hashes, report sightings, read the delta feed of the hash
list and give feedback on matches (``platforms``). They see hashes, distances, opaque bank ids
and opaque match ids: never a case, an organisation or anything personal. Case workers and
admins configure banks, import and export lists in python-threatexchange's plain format
(``banks``), and confirm false positives into the negative bank (``false_positives``). Bodies
are in ``bodies``, answers in ``views``; routes map HTTP to values and call the application.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends
from ncii_events.auth import Principal
from ncii_events.http import Problem, not_found
from ncii_events.service import app_of, authenticated
from ncii_events.store import ConcurrencyError

from ncii_hashmatch import domain
from ncii_hashmatch.app import HashmatchApp, NoMatchError, NotFoundError

hashmatch_app = app_of(HashmatchApp)
"""The application of this process: the one place routes reach it from."""

App = Annotated[HashmatchApp, Depends(hashmatch_app)]
Caller = Annotated[Principal, Depends(authenticated)]
PLATFORMS = ("platform",)
BANK_STAFF = ("caseworker", "admin")
CASE_BANK_READERS = ("caseworker",)
"""Who reads the victims' hashes a case bank holds (personal: decision 26), as case workers
read cases' personal data; an admin reads without them (decision 27), unrecorded reads none."""


@contextlib.contextmanager
def command_problems() -> Iterator[None]:
    """How the application's errors read over HTTP: one place for every write."""
    try:
        yield
    except NoMatchError:
        raise Problem(
            422,
            "No current match",
            "this hash matches nothing in the bank now; nothing was recorded",
            kind="no-current-match",
        ) from None
    except NotFoundError:
        raise not_found("match") from None
    except ConcurrencyError:
        # only after several reloads and retries: the match is being written by many requests
        raise Problem(
            409,
            "Conflict",
            "this match changed while the request was processed, several times; retry",
            kind="concurrent-change",
        ) from None
    except domain.BankRuleError as exc:
        title = (
            "Not possible for this bank"
            if isinstance(exc, domain.ProgrammeFixed)
            else "Not possible for this match"
        )
        raise Problem(exc.status, title, exc.detail, kind=exc.kind) from None
