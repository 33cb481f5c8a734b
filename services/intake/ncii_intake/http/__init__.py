"""Intake's HTTP API: routes for partners and case workers (``cases``) and the victim's own
access (``victim``); bodies they take (``bodies``), answers they give (``views``), and what every
write to a case shares (``writes``). Routes map HTTP to values; the domain decides."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from ncii_events.service import app_of

from ncii_intake.app import IntakeApp

intake_app = app_of(IntakeApp)
"""The application service of this process: the one place routes reach it from."""

App = Annotated[IntakeApp, Depends(intake_app)]
