"""HTTP conventions shared by every service: problem details (``problems``), idempotent writes
(``idempotency``), page cursors (``pagination``) and the field types of request bodies
(``fields``)."""

from ncii_events.http.idempotency import (
    Idempotency,
    IdempotencyKey,
    Idempotent,
    IdempotentWrite,
    idempotent,
    request_fingerprint,
)
from ncii_events.http.pagination import decode_cursor, encode_cursor
from ncii_events.http.problems import (
    PROBLEM_BASE,
    PROBLEM_JSON,
    Problem,
    install_error_handlers,
    not_found,
    problem_response,
)

__all__ = [
    "PROBLEM_BASE",
    "PROBLEM_JSON",
    "Idempotency",
    "IdempotencyKey",
    "Idempotent",
    "IdempotentWrite",
    "Problem",
    "decode_cursor",
    "encode_cursor",
    "idempotent",
    "install_error_handlers",
    "not_found",
    "problem_response",
    "request_fingerprint",
]
