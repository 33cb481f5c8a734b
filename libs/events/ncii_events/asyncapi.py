"""The AsyncAPI 3.0 document of a service, drawn from the contracts: one channel per event type
and stream, its subject pattern from the stream, its payload the event's JSON schema, and a send
operation for what the service emits, a receive operation for what it consumes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ncii_contracts.base import DomainEvent, personal_fields
from ncii_contracts.streams import StreamSpec

_SCHEMAS = "#/components/schemas/{model}"


def channel_id(stream: StreamSpec, event: type[DomainEvent]) -> str:
    return f"{stream.name}.{event.event_type}"


def _address(stream: StreamSpec, event: type[DomainEvent]) -> str:
    return stream.subject("{case_id}", event.aggregate, "{aggregate_id}", event.event_type)


def _parameters(stream: StreamSpec, event: type[DomainEvent]) -> dict[str, Any]:
    ids = {"aggregate_id": {"description": f"The id of the {event.aggregate}."}}
    if stream.per_case:
        return {"case_id": {"description": "The case the event belongs to."}, **ids}
    return ids


def _message(event: type[DomainEvent], schemas: dict[str, Any]) -> dict[str, Any]:
    payload = event.model_json_schema(ref_template=_SCHEMAS)
    for name, schema in payload.pop("$defs", {}).items():
        if schemas.setdefault(name, schema) != schema:
            raise ValueError(f"two contracts define different schemas named {name}")
    for name in personal_fields(event):
        payload["properties"][name]["x-ncii-personal"] = True  # encrypted with the case's key
    doc = (event.__doc__ or "").strip()
    return {
        "name": event.event_type,
        "title": event.event_type,
        "summary": doc.split("\n\n")[0] if doc else event.event_type,
        "description": (
            f"Carried as the `payload` of the log's envelope (schema version {event.version}); "
            "fields marked x-ncii-personal are encrypted with the case's key."
        ),
        "payload": payload,
    }


def asyncapi_document(
    *,
    title: str,
    version: str,
    description: str,
    emits: Iterable[type[DomainEvent]],
    consumes: Iterable[type[DomainEvent]],
) -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for action, events in (("send", emits), ("receive", consumes)):
        for event in events:
            name = event.event_type
            if name not in messages:
                messages[name] = _message(event, schemas)
            for stream in event.streams:
                cid = channel_id(stream, event)
                channels[cid] = {
                    "address": _address(stream, event),
                    "description": f"{name} on the {stream.name} stream.",
                    "parameters": _parameters(stream, event),
                    "messages": {name: {"$ref": f"#/components/messages/{name}"}},
                }
                operations[f"{action}.{cid}"] = {
                    "action": action,
                    "channel": {"$ref": f"#/channels/{cid}"},
                    "messages": [{"$ref": f"#/channels/{cid}/messages/{name}"}],
                }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": title, "version": version, "description": description},
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }
