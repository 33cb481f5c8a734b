"""Header blocks as bytes: built, read and status lines, as nats-py reads them."""

from __future__ import annotations

import pytest
from nats import errors
from nats.aio.client import Client
from ncii_events.transport.headers import (
    header_block,
    header_value,
    parse_header_lines,
    status_description,
    status_of,
)


def test_header_block_refuses_a_bad_name_a_line_break_or_padding() -> None:
    bad = [(name, "v") for name in ["Bad Name", "", "A:B", "é", "A\r\n"]]
    bad += [("A", value) for value in ["a\r\nB: c", "a\n", "a\rb", " a", "a ", "\ta"]]
    for name, value in bad:
        with pytest.raises(errors.BadHeaderError):
            header_block([("Ok", "fine"), (name, value)])


TIMEOUT = b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 1\r\n\r\n"


@pytest.mark.parametrize(
    ("raw", "status", "description"),
    [
        (b"NATS/1.0 404 No Messages\r\n\r\n", "404", "No Messages"),
        (TIMEOUT, "408", "Request Timeout"),
        (b"NATS/1.0 503\r\n\r\n", "503", ""),
        (b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 5\r\n\r\n", "100", "Idle Heartbeat"),
        (b"NATS/1.0\r\nNats-Sequence: 3\r\n\r\n", None, None),
        (b"", None, ""),
        (None, None, ""),
    ],
)
async def test_status_of_and_its_description_are_what_nats_py_reports(
    raw: bytes | None, status: str | None, description: str | None
) -> None:
    assert status_of(raw) == status
    parsed = await Client()._process_headers(raw) or {}
    assert status_of(raw) == parsed.get("Status")
    if description is not None:
        assert status_description(raw) == description == parsed.get("Description", "")


def test_header_value_reads_one_header_as_the_full_parser_does() -> None:
    pairs = [("Nats-Stream", "EVENTS"), ("Nats-Sequence", "42"), ("Nats-Num-Pending", "0")]
    raw = header_block([*pairs, ("X", "台北")])
    full = parse_header_lines(raw)
    assert len(full) == 4
    for name in full:
        assert header_value(raw, name.encode()) == full[name]
    for absent in [b"Nats-Num", b"Missing", b"NATS/1.0"]:
        assert header_value(raw, absent) is None
    assert header_value(TIMEOUT, b"Nats-Pending-Messages") == "1"
    padded = b"NATS/1.0\r\nA:\t v \r\nB:w\r\n\r\n"
    assert (header_value(padded, b"A"), header_value(padded, b"B")) == ("v", "w")


def test_a_block_without_a_status_has_no_status_description() -> None:
    assert status_description(b"NATS/1.0\r\nNats-Sequence: 3\r\n\r\n") == ""
    assert status_description(None) == ""
