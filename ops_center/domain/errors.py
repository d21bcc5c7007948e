"""Errors with a stable code, a JSON pointer and a human detail.

`Rejection` is what a single ingested event gets back when it cannot be accepted. Its
`code` is one of the rejection codes of docs/CONTRACT.md §2; `pointer` is an RFC 6901
pointer into the CloudEvent (for example ``/data/status``).
"""

from __future__ import annotations

from typing import Final

INVALID_ENVELOPE: Final = "invalid_envelope"
UNKNOWN_TYPE: Final = "unknown_type"
INVALID_DATA: Final = "invalid_data"
UNKNOWN_UNIT: Final = "unknown_unit"
UNKNOWN_AGENCY: Final = "unknown_agency"
UNKNOWN_SUBJECT: Final = "unknown_subject"
INVALID_TRANSITION: Final = "invalid_transition"
CONFLICT: Final = "conflict"
FORBIDDEN: Final = "forbidden"
STORE_UNAVAILABLE: Final = "store_unavailable"
INTERNAL: Final = "internal_error"

#: Every code an event's result may carry (the OpenAPI description lists these).
REJECTION_CODES: Final = (
    INVALID_ENVELOPE,
    UNKNOWN_TYPE,
    INVALID_DATA,
    UNKNOWN_UNIT,
    UNKNOWN_AGENCY,
    UNKNOWN_SUBJECT,
    INVALID_TRANSITION,
    CONFLICT,
    FORBIDDEN,
    INTERNAL,
)


class Rejection(Exception):
    """An event that cannot be accepted, with a code, a pointer and a detail."""

    def __init__(self, code: str, pointer: str, detail: str) -> None:
        super().__init__(f"{code} at {pointer}: {detail}")
        self.code = code
        self.pointer = pointer
        self.detail = detail

    def as_json(self) -> dict[str, str]:
        return {"code": self.code, "pointer": self.pointer, "detail": self.detail}


def invalid_data(field: str, detail: str) -> Rejection:
    """A rejection for a field of the event's `data`."""
    return Rejection(INVALID_DATA, f"/data/{field}", detail)
