"""The audit service: its spec, nothing else."""

from __future__ import annotations

from ncii_contracts.audit import AUDIT_EVENTS
from ncii_events.serve import serve
from ncii_events.service import ServiceSpec

from ncii_audit.app import AuditApp, build_audit_app
from ncii_audit.http import cases

SPEC: ServiceSpec[AuditApp] = ServiceSpec(
    name="audit",
    port=18105,
    title="Audit",
    description=(
        "Auditors (read only, every organisation) replay any case from the log: every "
        "service's events in log order, each link and signature verified, the case as it "
        "stood at any time, who read its personal data; and a signed case bundle that a "
        "third party verifies offline. Personal fields only with a stated reason, recorded "
        "first."
    ),
    # An auditor's reveal: AuditorReadPersonalData, as an admin's is PersonalDataRead in intake.
    emits=AUDIT_EVENTS,
    routers=[cases.router],
    app=build_audit_app,
)


def run() -> None:
    serve(SPEC)


if __name__ == "__main__":
    run()
