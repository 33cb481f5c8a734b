"""The published contracts: one registry for all of them, the AsyncAPI document drawn from them,
and the import boundaries (no service imports another; the libraries know no service)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ncii_contracts import ALL_EVENTS
from ncii_contracts.audit import AUDIT_EVENTS
from ncii_contracts.hashmatch import HASHMATCH_EVENTS, BankConfigured, HashesBanked, MatchFound
from ncii_contracts.intake import INTAKE_EVENTS, CaseErased, CaseOpened
from ncii_contracts.principals import PRINCIPAL_EVENTS, PrincipalCreated
from ncii_contracts.referral import REFERRAL_EVENTS
from ncii_contracts.streams import CASES, REFERENCE
from ncii_contracts.takedown import TAKEDOWN_EVENTS
from ncii_events.asyncapi import asyncapi_document
from ncii_events.registry import EventRegistry

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {p.name: p for p in (ROOT / "services").iterdir() if (p / "pyproject.toml").is_file()}
SERVICE_PACKAGES = {f"ncii_{name}" for name in SERVICES}


def test_every_contract_is_one_event_type_and_one_registry_holds_them_all() -> None:
    types = [cls.event_type for cls in ALL_EVENTS]
    assert len(types) == len(set(types))
    assert set(ALL_EVENTS) == {
        *INTAKE_EVENTS,
        *HASHMATCH_EVENTS,
        *TAKEDOWN_EVENTS,
        *REFERRAL_EVENTS,
        *AUDIT_EVENTS,
        *PRINCIPAL_EVENTS,
    }
    registry = EventRegistry(*ALL_EVENTS)
    assert all(registry.is_known(t) for t in types)
    assert registry.personal_fields("CaseOpened") == {"pseudonym", "contact", "channels", "region"}
    # a counsellor's notes and the contact route are erased with the case (decision 0033)
    assert registry.personal_fields("CounsellorNoteAdded") == {"note"}
    assert registry.personal_fields("ReferralOffered") == {
        "pseudonym",
        "contact_kind",
        "contact_value",
    }
    assert registry.personal_fields("MatchFound") == {"url"}
    # a window's count keeps no URL: the window's first is in its MatchFound (decision 24)
    assert registry.personal_fields("SightingsCounted") == set()


def _document(**kwargs: Any) -> dict[str, Any]:
    return asyncapi_document(title="ncii test", version="1", description="d", **kwargs)


def test_sightings_counted_is_published_beside_match_found_on_both_streams() -> None:
    doc = _document(emits=HASHMATCH_EVENTS, consumes=())
    channels = {name: c["address"] for name, c in doc["channels"].items()}
    assert channels["NCII.SightingsCounted"] == (
        "ncii.{case_id}.match.{aggregate_id}.SightingsCounted"
    )
    assert channels["NCII_REF.SightingsCounted"] == "nciiref.match.{aggregate_id}.SightingsCounted"
    payload = doc["components"]["messages"]["SightingsCounted"]["payload"]
    assert {"sightings", "window_start", "window_end", "first_seen_at", "last_seen_at"} <= set(
        payload["properties"]
    )
    assert "url" not in payload["properties"]


def test_the_asyncapi_document_gives_each_stream_its_own_subject_pattern() -> None:
    doc = _document(emits=(CaseOpened, BankConfigured, MatchFound), consumes=(PrincipalCreated,))
    addresses = {cid: channel["address"] for cid, channel in doc["channels"].items()}
    assert addresses == {
        "NCII.CaseOpened": "ncii.{case_id}.case.{aggregate_id}.CaseOpened",
        "NCII_REF.BankConfigured": "nciiref.bank.{aggregate_id}.BankConfigured",
        "NCII.MatchFound": "ncii.{case_id}.match.{aggregate_id}.MatchFound",
        "NCII_REF.MatchFound": "nciiref.match.{aggregate_id}.MatchFound",
        "NCII_REF.PrincipalCreated": "nciiref.principal.{aggregate_id}.PrincipalCreated",
    }
    assert set(doc["channels"]["NCII.CaseOpened"]["parameters"]) == {"case_id", "aggregate_id"}
    assert set(doc["channels"]["NCII_REF.BankConfigured"]["parameters"]) == {"aggregate_id"}
    # every address is the stream's own subject for that event, wildcards in place of the ids
    for cid, address in addresses.items():
        stream = {CASES.name: CASES, REFERENCE.name: REFERENCE}[cid.split(".")[0]]
        assert address.startswith(f"{stream.prefix}.")
        assert address.count(".") == (4 if stream.per_case else 3)


def test_the_asyncapi_document_sends_what_is_emitted_and_receives_what_is_consumed() -> None:
    doc = _document(emits=(HashesBanked, MatchFound), consumes=(CaseErased,))
    assert doc["asyncapi"] == "3.0.0"
    actions = {oid: op["action"] for oid, op in doc["operations"].items()}
    assert actions == {
        "send.NCII.HashesBanked": "send",
        "send.NCII.MatchFound": "send",
        "send.NCII_REF.MatchFound": "send",
        "receive.NCII.CaseErased": "receive",
    }
    op = doc["operations"]["send.NCII_REF.MatchFound"]
    assert _resolve(doc, op["channel"]["$ref"]) is doc["channels"]["NCII_REF.MatchFound"]
    assert _resolve(doc, op["messages"][0]["$ref"])["$ref"] == "#/components/messages/MatchFound"


def test_a_message_payload_is_the_event_models_json_schema_with_personal_fields_marked() -> None:
    doc = _document(emits=(CaseOpened, HashesBanked), consumes=())
    payload = doc["components"]["messages"]["CaseOpened"]["payload"]
    schema = CaseOpened.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs")
    assert set(payload["properties"]) == set(schema["properties"])
    assert payload["required"] == schema["required"]
    assert payload["properties"]["pseudonym"]["x-ncii-personal"] is True
    assert "x-ncii-personal" not in payload["properties"]["reference"]
    for name, definition in defs.items():
        assert doc["components"]["schemas"][name] == definition
    assert "BankedEntry" in doc["components"]["schemas"]


def test_every_reference_in_the_asyncapi_document_resolves() -> None:
    doc = _document(emits=ALL_EVENTS, consumes=())
    refs = list(_refs(doc))
    assert refs
    for ref in refs:
        assert _resolve(doc, ref) is not None, ref


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/")
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _imports(folder: Path) -> Iterator[tuple[Path, str]]:
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield path, alias.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                yield path, node.module.split(".")[0]


def test_no_service_imports_another_service() -> None:
    wrong = [
        f"{path.relative_to(ROOT)} imports {module}"
        for name, folder in SERVICES.items()
        for path, module in _imports(folder)
        if module in SERVICE_PACKAGES - {f"ncii_{name}"}
    ]
    assert wrong == []


def test_no_service_package_depends_on_another_service() -> None:
    distributions = {f"ncii-{name}" for name in SERVICES}
    for name, folder in SERVICES.items():
        project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
        deps = {re.split(r"[\s\[<>=!~;]", d)[0] for d in project["dependencies"]}
        assert deps & distributions == set(), name


def test_the_libraries_import_no_service_and_the_contracts_only_pydantic() -> None:
    for library in ("events", "contracts"):
        wrong = [
            f"{path.relative_to(ROOT)} imports {module}"
            for path, module in _imports(ROOT / "libs" / library)
            if module in SERVICE_PACKAGES
        ]
        assert wrong == [], library
    third_party = {
        module
        for _path, module in _imports(ROOT / "libs" / "contracts")
        if module not in {"ncii_contracts", "pydantic"} and module not in sys.stdlib_module_names
    }
    assert third_party == set()
