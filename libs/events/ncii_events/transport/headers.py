"""The NATS header block as bytes: building, reading one value, status lines (pure functions)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from nats import errors

# One C-level pass over the block: a line whose name is an ASCII token (no white space, no
# colon) followed by ``:``; other lines are skipped, as nats-py skips them.
_HEADER_LINE = re.compile(rb"^([!-9;-~]*):([^\r\n]*)", re.MULTILINE)
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_STATUS = re.compile(rb"NATS/1\.0 (\d{3})")


def parse_header_lines(raw: bytes) -> dict[str, str]:
    return {
        name.decode("ascii"): value.strip(b" \t").decode("utf-8", "replace")
        for name, value in _HEADER_LINE.findall(raw)
    }


def header_value_is_safe(value: str) -> bool:
    """One line without surrounding white space: what nats-py would neither refuse nor change."""
    return "\r" not in value and "\n" not in value and value == value.strip()


def header_block(headers: Iterable[tuple[str, str]]) -> bytes:
    """The wire form of message headers (``NATS/1.0`` and one ``Name: value`` line each).

    Refuses what nats-py refuses or would silently change: a name that is not a token, a value
    with a line break or surrounding white space.
    """
    lines = [b"NATS/1.0"]
    for name, value in headers:
        if not _HEADER_NAME.fullmatch(name):
            raise errors.BadHeaderError(name)
        if not header_value_is_safe(value):
            raise errors.BadHeaderError(f"{name}: the value must be one line without padding")
        lines.append(f"{name}: {value}".encode())
    lines.append(b"\r\n")
    return b"\r\n".join(lines)


def status_of(raw_headers: bytes | None) -> str | None:
    """The status code of a message (``"404"``, ``"503"``...), or ``None`` for a plain one."""
    if not raw_headers:
        return None
    found = _STATUS.match(raw_headers)
    return found.group(1).decode() if found else None


def status_description(raw_headers: bytes | None) -> str:
    """The text after a status code (``No Messages``...), or ``""``."""
    if status_of(raw_headers) is None:
        return ""
    assert raw_headers is not None
    return raw_headers[12:].split(b"\r\n", 1)[0].strip().decode("utf-8", "replace")


def header_value(raw_headers: bytes, name: bytes) -> str | None:
    """One header's value from the raw block, without parsing the rest."""
    at = raw_headers.find(b"\r\n" + name + b":")
    if at < 0:
        return None
    start = at + len(name) + 3
    end = raw_headers.find(b"\r\n", start)
    return raw_headers[start:end].strip(b" \t").decode("utf-8", "replace")
