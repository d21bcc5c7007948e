"""CloudEvents 1.0 envelopes: structured and binary forms, checked and fingerprinted.

Parsing is pure: it never looks at the event store. The result is either a `CloudEvent`
or a `Rejection` with code ``invalid_envelope`` and a pointer to the bad attribute.
`CloudEvent.digest` fingerprints the event's content so that a repeat of the same
``(source, id)`` can be told apart from a different event reusing the key.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote

import orjson

from ops_center.domain.errors import INVALID_ENVELOPE, Rejection
from ops_center.ingest import fields as f

SPECVERSION: Final = "1.0"
REQUIRED: Final = ("specversion", "id", "source", "type", "time", "subject", "data")
_CONTEXT: Final = frozenset(
    {"specversion", "id", "source", "type", "time", "subject", "datacontenttype", "dataschema"}
)
_EXTENSION_NAME = re.compile(r"[a-z0-9]{1,20}")
MAX_ID: Final = 256
MAX_SOURCE: Final = 512
MAX_TYPE: Final = 128
MAX_EXTENSIONS: Final = 16


@dataclass(frozen=True, slots=True)
class CloudEvent:
    """A well-formed CloudEvent whose data is JSON."""

    id: str
    source: str
    type: str
    time: str
    subject: str
    data: Any
    extensions: Mapping[str, Any]
    digest: bytes


def _is_json_content_type(value: str) -> bool:
    media = value.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json") or media == "text/json"


def _string(attrs: Mapping[str, Any], name: str, max_length: int) -> str:
    value = attrs.get(name)
    if value is None:
        raise Rejection(INVALID_ENVELOPE, f"/{name}", "is required")
    if not isinstance(value, str) or not value:
        raise Rejection(INVALID_ENVELOPE, f"/{name}", "must be a non-empty string")
    if len(value) > max_length:
        raise Rejection(INVALID_ENVELOPE, f"/{name}", f"must be at most {max_length} characters")
    if "\x00" in value:
        raise Rejection(INVALID_ENVELOPE, f"/{name}", "must not contain NUL characters")
    return value


def identity(raw: Any) -> tuple[str | None, str | None]:
    """The ``(id, source)`` of a raw event when they are strings, for error reporting."""
    if not isinstance(raw, dict):
        return None, None
    event_id, source = raw.get("id"), raw.get("source")
    return (
        event_id if isinstance(event_id, str) else None,
        source if isinstance(source, str) else None,
    )


def parse(raw: Any) -> CloudEvent:
    """Check a structured-mode event (a decoded JSON object); raise `Rejection` if malformed."""
    if not isinstance(raw, dict):
        raise Rejection(INVALID_ENVELOPE, "", "an event must be a JSON object")
    specversion = raw.get("specversion")
    if specversion != SPECVERSION:
        raise Rejection(INVALID_ENVELOPE, "/specversion", 'must be "1.0"')
    event_id = _string(raw, "id", MAX_ID)
    source = _string(raw, "source", MAX_SOURCE)
    event_type = _string(raw, "type", MAX_TYPE)
    sent_time = _string(raw, "time", 64)
    try:
        f.parse_time(sent_time)
    except f.FieldError as exc:
        raise Rejection(INVALID_ENVELOPE, "/time", str(exc)) from None
    time = f.normalise_time(sent_time)
    subject = _string(raw, "subject", 64)
    try:
        f.code(subject)
    except f.FieldError as exc:
        raise Rejection(INVALID_ENVELOPE, "/subject", f"must be a code: {exc}") from None
    content_type = raw.get("datacontenttype")
    if content_type is not None and (
        not isinstance(content_type, str) or not _is_json_content_type(content_type)
    ):
        raise Rejection(INVALID_ENVELOPE, "/datacontenttype", "data must be application/json")
    dataschema = raw.get("dataschema")
    if dataschema is not None and not isinstance(dataschema, str):
        raise Rejection(INVALID_ENVELOPE, "/dataschema", "must be a URI string")
    if "data_base64" in raw:
        raise Rejection(INVALID_ENVELOPE, "/data_base64", "data must be JSON, not base64")
    if "data" not in raw:
        raise Rejection(INVALID_ENVELOPE, "/data", "is required")
    extensions: dict[str, Any] = {}
    for name, value in raw.items():
        if name in _CONTEXT or name == "data":
            continue
        if not _EXTENSION_NAME.fullmatch(name):
            raise Rejection(
                INVALID_ENVELOPE,
                f"/{name}",
                "extension attribute names are 1-20 lower-case letters or digits",
            )
        if not isinstance(value, str | int | bool) or value is None:
            raise Rejection(INVALID_ENVELOPE, f"/{name}", "extension values must be scalars")
        if isinstance(value, str) and "\x00" in value:
            raise Rejection(INVALID_ENVELOPE, f"/{name}", "must not contain NUL characters")
        extensions[name] = value
    if len(extensions) > MAX_EXTENSIONS:
        raise Rejection(INVALID_ENVELOPE, "", f"at most {MAX_EXTENSIONS} extension attributes")
    data = raw["data"]
    return CloudEvent(
        id=event_id,
        source=source,
        type=event_type,
        time=time,
        subject=subject,
        data=data,
        extensions=extensions,
        digest=fingerprint(
            event_id, source, event_type, time, subject, data, extensions, dataschema
        ),
    )


def fingerprint(
    event_id: str,
    source: str,
    event_type: str,
    time: str,
    subject: str,
    data: Any,
    extensions: Mapping[str, Any],
    dataschema: str | None = None,
) -> bytes:
    """A 16-byte digest of the event's content, independent of key order and HTTP mode.

    Extension values are compared in their canonical string form (CloudEvents: an
    integer 5 in structured mode is the header ``ce-x: 5`` in binary mode).
    """
    canonical = orjson.dumps(
        [
            event_id,
            source,
            event_type,
            time,
            subject,
            data,
            {name: _canonical(value) for name, value in extensions.items()},
            dataschema,
        ],
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.blake2b(canonical, digest_size=16).digest()


def _canonical(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def from_binary(headers: Mapping[str, str], data: Any) -> CloudEvent:
    """Build an event from binary-mode ``ce-*`` headers and the decoded JSON body."""
    attrs: dict[str, Any] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower.startswith("ce-"):
            attrs[lower[3:]] = unquote(value)
    attrs["data"] = data
    return parse(attrs)
