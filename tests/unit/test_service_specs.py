"""Every event a service's projections read is one its registry can decode: an event type a
projection's subjects take in but the spec does not consume arrives as undecodable and ends as a
dead letter (referral's gate missed the victim's consent changes this way)."""

from __future__ import annotations

from ncii_cli.services import all_services
from ncii_contracts import ALL_EVENTS
from ncii_contracts.principals import PRINCIPAL_EVENTS
from ncii_events.service import projections_of


def _matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` one token, ``>`` the rest."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)


def test_every_event_a_projection_reads_is_one_its_service_decodes() -> None:
    missing: list[str] = []
    for name, spec in all_services().items():
        known = {e.event_type for e in (*spec.emits, *spec.consumes, *PRINCIPAL_EVENTS)}
        for projection in projections_of(spec):
            patterns = projection.subjects or (projection.stream.all_subjects,)
            for event in ALL_EVENTS:
                for stream in event.streams:
                    if stream != projection.stream:
                        continue
                    subject = stream.subject("c", event.aggregate, "a", event.event_type)
                    if event.event_type not in known and any(
                        _matches(p, subject) for p in patterns
                    ):
                        missing.append(f"{name}.{projection.name} reads {event.event_type}")
    assert missing == []
