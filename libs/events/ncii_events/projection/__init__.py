"""Projections: SQL read models fed from the log, from their SQL checkpoint (see ``runner``)."""

from ncii_events.projection.base import Projection, subject_matches
from ncii_events.projection.dead_letters import DeadLetter, list_dead_letters, retry_dead_letter
from ncii_events.projection.runner import ProjectionRunner, reset

__all__ = [
    "DeadLetter",
    "Projection",
    "ProjectionRunner",
    "list_dead_letters",
    "reset",
    "retry_dead_letter",
    "subject_matches",
]
