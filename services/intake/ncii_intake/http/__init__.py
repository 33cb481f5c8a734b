"""Intake's HTTP API: routes for partners and case workers (``cases``) and the victim's own
access (``victim``); bodies they take (``bodies``), answers they give (``views``), and what every
write to a case shares (``writes``). Routes map HTTP to values; the domain decides."""

from __future__ import annotations

from typing import Annotated
from weakref import WeakKeyDictionary

from fastapi import Depends, Request
from ncii_events.service import ServiceRuntime, runtime_of

from ncii_intake.app import IntakeApp

_APPS: WeakKeyDictionary[ServiceRuntime, IntakeApp] = WeakKeyDictionary()


def intake_app(request: Request) -> IntakeApp:
    """The application service of this process: the one place routes reach it from."""
    runtime = runtime_of(request)
    app = _APPS.get(runtime)
    if app is None:
        app = _APPS[runtime] = IntakeApp(runtime.store, runtime.keys, runtime.master)
    return app


App = Annotated[IntakeApp, Depends(intake_app)]
