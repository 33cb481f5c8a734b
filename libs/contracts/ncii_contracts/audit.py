"""The audit service's events (issue 13, decision 37)."""

from __future__ import annotations

from ncii_contracts.base import DomainEvent
from ncii_contracts.intake import PersonalDataRead


class AuditorReadPersonalData(PersonalDataRead, aggregate="personal_data_read"):
    """An auditor read a case's personal fields through the audit service, for a stated
    reason: recorded before the data is returned, like an admin's ``PersonalDataRead`` in
    intake (decision 27), with the same fields. Its own type, so each event type keeps one
    writer (one service's NATS user and signing key); the same ``personal_data_read``
    aggregate, so the case's access log is one subject filter. Codes and names only."""


AUDIT_EVENTS: tuple[type[DomainEvent], ...] = (AuditorReadPersonalData,)
