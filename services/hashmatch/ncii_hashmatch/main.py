"""The hashmatch service: its spec, nothing else."""

from __future__ import annotations

from pathlib import Path

from ncii_contracts.hashmatch import HASHMATCH_EVENTS
from ncii_contracts.intake import CaseErased, CaseWithdrawn, ConsentsChanged, HashesSubmitted
from ncii_events.serve import serve
from ncii_events.service import ServiceSpec

from ncii_hashmatch.app import HashmatchApp, build, workers
from ncii_hashmatch.http import banks, false_positives, platforms
from ncii_hashmatch.read_models.projections import BankProjection, BankReferenceProjection

SPEC: ServiceSpec[HashmatchApp] = ServiceSpec(
    name="hashmatch",
    port=18103,
    title="Hashmatch",
    description=(
        "The hash bank (one bank per partner organisation and programme for case hashes: "
        "minors' in the child-protection programme, adults' in the adults'; named banks for "
        "imported lists, a negative bank of confirmed false positives), exact matching of "
        "PDQ (with rotations and flips), MD5 and vPDQ, and the platform exchange: look-ups, "
        "sightings, a delta feed of the hash list and feedback. Withdrawn and erased cases' "
        "hashes leave matching at once. Imports and exports python-threatexchange's plain "
        "list format."
    ),
    projections=(BankProjection(), BankReferenceProjection()),
    migrations=Path(__file__).parent / "migrations",
    emits=HASHMATCH_EVENTS,
    consumes=(HashesSubmitted, CaseWithdrawn, CaseErased, ConsentsChanged),
    routers=[platforms.router, banks.router, false_positives.router],
    app=build,
    workers=workers,
)


def run() -> None:
    serve(SPEC)


if __name__ == "__main__":
    run()
