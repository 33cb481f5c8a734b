"""The hashmatch service: wiring only."""

from __future__ import annotations

from ncii_events.serve import serve
from ncii_events.service import ServiceSpec

SPEC = ServiceSpec(
    name="hashmatch",
    title="Hashmatch",
    description="The hash bank, exact matching of PDQ/MD5 hashes, and the platform exchange.",
)


def run() -> None:
    serve(SPEC)


if __name__ == "__main__":
    run()
