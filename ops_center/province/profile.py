"""The province profile: administrative units and agencies with stable codes.

The server loads one profile at start (docs/CONTRACT.md §1). A profile is a JSON file::

    {"profile": {"code": ..., "name": ..., "name_en": ..., "demo": ..., "description": ...,
                 "timezone": ...},
     "units": [{"code": ..., "name": ..., "name_en": ..., "level": ..., "parent": ...,
                "lat": ..., "lon": ...}, ...],
     "agencies": [{"code": ..., "name": ..., "name_en": ..., "unit": ...}, ...]}

`load_profile` reads and parses such a file; `parse_profile` validates an already decoded
JSON value. Both return an immutable `Profile` or raise `ProfileError`, whose message names
the file and an RFC 6901 pointer to the offending value, for example
``demo.json: /units/17/parent: unknown unit 'X'``.

The rules a profile must follow are checked by `ops_center.province.parsing`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Final

import orjson

from ops_center.province.calendar import TZ_NAME

__all__ = [
    "DEMO_PROFILE",
    "DEMO_TWO_TIER_PROFILE",
    "UNIT_LEVELS",
    "Agency",
    "Profile",
    "ProfileError",
    "Unit",
    "load_profile",
    "parse_profile",
]

UNIT_LEVELS: Final = frozenset(
    {"province", "district", "commune", "ward", "township", "special_zone"}
)
"""Every accepted value of a unit's ``level``."""

COMMUNE_LEVELS: Final = frozenset({"commune", "ward", "township", "special_zone"})
"""The commune-level (lowest tier) unit levels."""

DEFAULT_TIMEZONE: Final = TZ_NAME

_PROFILES_DIR: Final = Path(__file__).resolve().parent / "profiles"

DEMO_PROFILE: Final = _PROFILES_DIR / "demo.json"
"""The shipped three-tier demo profile (fictional province, province -> district -> commune)."""

DEMO_TWO_TIER_PROFILE: Final = _PROFILES_DIR / "demo-two-tier.json"
"""The shipped demo profile reorganised as the 2025 two-tier local government."""

CODE_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}")
_ROOT_POINTER: Final = "(root)"


class ProfileError(ValueError):
    """A profile that cannot be read or is invalid.

    `origin` names the file (or whatever the caller passed), `pointer` is the RFC 6901
    pointer of the offending value (``""`` for the whole document, None when the file could
    not be read or decoded) and `detail` says what is wrong. The message is
    ``"<origin>: <pointer>: <detail>"``, with ``(root)`` standing for the empty pointer.
    """

    def __init__(self, origin: str, pointer: str | None, detail: str) -> None:
        if pointer is None:
            message = f"{origin}: {detail}"
        else:
            message = f"{origin}: {pointer or _ROOT_POINTER}: {detail}"
        super().__init__(message)
        self.origin = origin
        self.pointer = pointer
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Unit:
    """An administrative unit: the province, a district-level unit or a commune-level unit.

    `parent` is the code of the unit directly above, None for the province.
    """

    code: str
    name: str
    level: str
    parent: str | None
    name_en: str | None = None
    lat: float | None = None
    lon: float | None = None


@dataclass(frozen=True, slots=True)
class Agency:
    """An agency (a provincial department, the police, ...); `unit` is the unit it serves."""

    code: str
    name: str
    unit: str | None
    name_en: str | None = None


@dataclass(frozen=True)
class Profile:
    """A validated province profile.

    `units` and `agencies` are read-only mappings by code, in file order. The tree indexes
    behind `descendants` and `ancestors` are computed once, at construction. Build profiles
    with `parse_profile` or `load_profile`, which validate; constructing one directly assumes
    consistent data (unknown parents simply end a unit's ancestor chain).
    """

    code: str
    name: str
    name_en: str | None
    demo: bool
    description: str
    timezone: str
    units: Mapping[str, Unit]
    agencies: Mapping[str, Agency]
    _descendants: Mapping[str, frozenset[str]] = field(init=False, repr=False, compare=False)
    _ancestors: Mapping[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    _root: Unit | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        units = MappingProxyType(dict(self.units))
        agencies = MappingProxyType(dict(self.agencies))
        object.__setattr__(self, "units", units)
        object.__setattr__(self, "agencies", agencies)
        ancestors = {code: _ancestor_chain(units, code) for code in units}
        below: dict[str, set[str]] = {code: {code} for code in units}
        for code, chain in ancestors.items():
            for ancestor in chain:
                below[ancestor].add(code)
        object.__setattr__(self, "_ancestors", MappingProxyType(ancestors))
        object.__setattr__(
            self,
            "_descendants",
            MappingProxyType({code: frozenset(codes) for code, codes in below.items()}),
        )
        root = next((u for u in units.values() if u.level == "province" and u.parent is None), None)
        object.__setattr__(self, "_root", root)

    def has_unit(self, code: str) -> bool:
        """Whether `code` is the code of a unit of this profile."""
        return code in self.units

    def has_agency(self, code: str) -> bool:
        """Whether `code` is the code of an agency of this profile."""
        return code in self.agencies

    def descendants(self, code: str) -> frozenset[str]:
        """The codes of the unit `code` and of every unit below it, at any depth.

        Precomputed: a dictionary lookup. Raises KeyError for an unknown code.
        """
        return self._descendants[code]

    def owners_within(self, units: frozenset[str]) -> frozenset[str]:
        """KPI owners inside these units: the units, and the agencies serving one of them."""
        return units | {a.code for a in self.agencies.values() if a.unit in units}

    def unit_of(self, owner: str) -> str | None:
        """The unit of a KPI owner: the unit itself, or the agency's unit (None: unknown)."""
        if owner in self.units:
            return owner
        agency = self.agencies.get(owner)
        return None if agency is None else agency.unit

    def ancestors(self, code: str) -> tuple[str, ...]:
        """The codes of the units above `code`, from its parent up to the province.

        Empty for the province itself. Raises KeyError for an unknown code.
        """
        return self._ancestors[code]

    @property
    def root(self) -> Unit:
        """The province unit (the only unit without a parent)."""
        if self._root is None:
            raise LookupError("the profile has no province unit")
        return self._root

    def unit_json(self) -> list[dict[str, object]]:
        """The units as ``GET /api/v1/units`` lists them in ``items``, in file order.

        Each item has ``code``, ``name``, ``name_en`` (possibly null), ``level`` and
        ``parent`` (null for the province), plus ``lat`` and ``lon`` when the unit has them.
        A fresh list is returned on every call.
        """
        items: list[dict[str, object]] = []
        for unit in self.units.values():
            item: dict[str, object] = {
                "code": unit.code,
                "name": unit.name,
                "name_en": unit.name_en,
                "level": unit.level,
                "parent": unit.parent,
            }
            if unit.lat is not None:
                item["lat"] = unit.lat
            if unit.lon is not None:
                item["lon"] = unit.lon
            items.append(item)
        return items

    def agency_json(self) -> list[dict[str, object]]:
        """The agencies as ``GET /api/v1/agencies`` lists them in ``items``, in file order.

        Each item has ``code``, ``name``, ``name_en`` and ``unit`` (the last two possibly
        null). A fresh list is returned on every call.
        """
        return [
            {"code": a.code, "name": a.name, "name_en": a.name_en, "unit": a.unit}
            for a in self.agencies.values()
        ]


def _ancestor_chain(units: Mapping[str, Unit], code: str) -> tuple[str, ...]:
    """Parents of `code` from nearest up; stops at a missing parent or a repeated code."""
    chain: list[str] = []
    seen = {code}
    parent = units[code].parent
    while parent is not None and parent in units and parent not in seen:
        chain.append(parent)
        seen.add(parent)
        parent = units[parent].parent
    return tuple(chain)


def load_profile(path: Path | str | None = None) -> Profile:
    """Read, decode (with orjson) and validate the profile file at `path`.

    None means the shipped `DEMO_PROFILE`. The only I/O is reading that one file. A file
    that cannot be read or is not valid JSON raises `ProfileError` naming the file and the
    cause; an invalid profile raises `ProfileError` as described in `parse_profile`. Messages
    name the file as given (``str(path)``).
    """
    file = DEMO_PROFILE if path is None else Path(path)
    origin = str(file)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ProfileError(origin, None, f"cannot read the file: {exc.strerror or exc}") from exc
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ProfileError(
            origin, None, f"not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
        ) from exc
    return parse_profile(raw, origin=origin)


def parse_profile(raw: object, *, origin: str = "<profile>") -> Profile:
    """Validate a decoded JSON value as a profile and build the `Profile`.

    Raises `ProfileError` for the first rule broken (`ops_center.province.parsing` lists
    the rules and their order); its message starts with `origin` and the pointer of the
    bad value. Pure: no I/O.
    """
    from ops_center.province.parsing import Parser

    return Parser(origin).parse(raw)
