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

Rules checked (the first problem found is reported; entries are checked in file order, then
the unit tree, then the agencies' units):

* the document, ``/profile``, every unit and every agency are JSON objects; ``/units`` is
  an array and ``/agencies`` (optional, default empty) is an array;
* ``code`` and ``name`` are present and non-empty; a code is 1-64 ASCII letters, digits or
  ``. _ : -`` starting with a letter or digit (codes appear in URLs and event subjects);
* codes are unique across units and agencies together;
* ``level`` is one of `UNIT_LEVELS`;
* exactly one unit has level ``province``, and it has no parent; every other unit names a
  parent that exists (parents may be listed after their children);
* the parent links have no cycles;
* a district's parent is the province; a commune, ward, township or special zone has a
  district or the province as parent (both the three-tier and the 2025 two-tier layouts);
* an agency's ``unit``, when given, is an existing unit;
* ``lat`` and ``lon``, when given, are finite numbers within [-90, 90] and [-180, 180].

Keys not named above are ignored, so a profile may carry extra annotations.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, NoReturn

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

_CODE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}")
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

    Raises `ProfileError` for the first rule broken (see the module docstring for the rules
    and their order); its message starts with `origin` and the pointer of the bad value.
    Pure: no I/O.
    """
    return _Parser(origin).parse(raw)


def _pointer(base: str, token: str | int) -> str:
    """`base` extended by one reference token, escaped as RFC 6901 requires."""
    text = str(token).replace("~", "~0").replace("/", "~1")
    return f"{base}/{text}"


class _Parser:
    """One validation pass over a decoded profile document."""

    def __init__(self, origin: str) -> None:
        self.origin = origin

    def fail(self, pointer: str, detail: str) -> NoReturn:
        raise ProfileError(self.origin, pointer, detail)

    # -- scalar helpers -----------------------------------------------------------------

    def obj(self, value: object, pointer: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(pointer, f"expected a JSON object, got {_kind(value)}")
        return value

    def array(self, value: object, pointer: str) -> list[Any]:
        if not isinstance(value, list):
            self.fail(pointer, f"expected a JSON array, got {_kind(value)}")
        return value

    def text(self, obj: Mapping[str, Any], key: str, base: str) -> str:
        pointer = _pointer(base, key)
        if key not in obj or obj[key] is None:
            self.fail(pointer, "missing")
        value = obj[key]
        if not isinstance(value, str):
            self.fail(pointer, f"expected a string, got {_kind(value)}")
        value = value.strip()
        if not value:
            self.fail(pointer, "must not be empty")
        return value

    def optional_text(self, obj: Mapping[str, Any], key: str, base: str) -> str | None:
        value = obj.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(_pointer(base, key), f"expected a string or null, got {_kind(value)}")
        return value.strip() or None

    def code(self, obj: Mapping[str, Any], base: str) -> str:
        value = self.text(obj, "code", base)
        if not _CODE.fullmatch(value):
            self.fail(
                _pointer(base, "code"),
                f"invalid code {value!r}: use 1-64 ASCII letters, digits or . _ : - "
                "starting with a letter or digit",
            )
        return value

    def reference(self, obj: Mapping[str, Any], key: str, base: str) -> str | None:
        value = obj.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.fail(_pointer(base, key), "expected a unit code or null")
        return value.strip()

    def coordinate(self, obj: Mapping[str, Any], key: str, base: str, limit: float) -> float | None:
        value = obj.get(key)
        if value is None:
            return None
        pointer = _pointer(base, key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(pointer, f"expected a number, got {_kind(value)}")
        number = float(value)
        if not math.isfinite(number) or not -limit <= number <= limit:
            self.fail(pointer, f"must be a number between {-limit:g} and {limit:g}")
        return number

    # -- document -----------------------------------------------------------------------

    def parse(self, raw: object) -> Profile:
        document = self.obj(raw, "")
        if "profile" not in document:
            self.fail("/profile", "missing")
        header = self.obj(document["profile"], "/profile")
        code = self.code(header, "/profile")
        name = self.text(header, "name", "/profile")
        name_en = self.optional_text(header, "name_en", "/profile")
        demo = header.get("demo", False)
        if not isinstance(demo, bool):
            self.fail("/profile/demo", f"expected true or false, got {_kind(demo)}")
        description = header.get("description")
        if description is None:
            description = ""
        elif not isinstance(description, str):
            self.fail("/profile/description", f"expected a string, got {_kind(description)}")
        timezone = (
            self.text(header, "timezone", "/profile")
            if header.get("timezone") is not None
            else DEFAULT_TIMEZONE
        )
        if timezone != TZ_NAME:
            self.fail(
                "/profile/timezone",
                f"the center counts days, months and deadlines in {TZ_NAME} "
                f"(ops_center.province.calendar); {timezone!r} is not supported",
            )

        if "units" not in document:
            self.fail("/units", "missing")
        raw_units = self.array(document["units"], "/units")
        agencies_value = document.get("agencies")
        raw_agencies = [] if agencies_value is None else self.array(agencies_value, "/agencies")

        seen: dict[str, str] = {}  # code -> pointer of the entry that defined it
        units: dict[str, Unit] = {}
        unit_pointers: dict[str, str] = {}
        for index, item in enumerate(raw_units):
            base = _pointer("/units", index)
            unit = self.unit(item, base)
            self.claim(seen, unit.code, base)
            units[unit.code] = unit
            unit_pointers[unit.code] = base

        agencies: dict[str, Agency] = {}
        for index, item in enumerate(raw_agencies):
            base = _pointer("/agencies", index)
            agency = self.agency(item, base)
            self.claim(seen, agency.code, base)
            agencies[agency.code] = agency

        self.check_tree(units, unit_pointers)

        for index, agency in enumerate(agencies.values()):
            if agency.unit is not None and agency.unit not in units:
                self.fail(
                    _pointer(_pointer("/agencies", index), "unit"),
                    f"unknown unit {agency.unit!r}",
                )

        return Profile(
            code=code,
            name=name,
            name_en=name_en,
            demo=demo,
            description=description.strip(),
            timezone=timezone,
            units=units,
            agencies=agencies,
        )

    def claim(self, seen: dict[str, str], code: str, base: str) -> None:
        """Record `code` as defined at `base`; fail if a unit or agency already has it."""
        if code in seen:
            self.fail(
                _pointer(base, "code"), f"duplicate code {code!r} (already used at {seen[code]})"
            )
        seen[code] = base

    def unit(self, item: object, base: str) -> Unit:
        obj = self.obj(item, base)
        code = self.code(obj, base)
        name = self.text(obj, "name", base)
        name_en = self.optional_text(obj, "name_en", base)
        level = self.text(obj, "level", base)
        if level not in UNIT_LEVELS:
            self.fail(
                _pointer(base, "level"),
                f"unknown level {level!r}: expected one of {', '.join(sorted(UNIT_LEVELS))}",
            )
        parent = self.reference(obj, "parent", base)
        lat = self.coordinate(obj, "lat", base, 90.0)
        lon = self.coordinate(obj, "lon", base, 180.0)
        return Unit(
            code=code, name=name, level=level, parent=parent, name_en=name_en, lat=lat, lon=lon
        )

    def agency(self, item: object, base: str) -> Agency:
        obj = self.obj(item, base)
        code = self.code(obj, base)
        name = self.text(obj, "name", base)
        name_en = self.optional_text(obj, "name_en", base)
        unit = self.reference(obj, "unit", base)
        return Agency(code=code, name=name, unit=unit, name_en=name_en)

    def check_tree(self, units: Mapping[str, Unit], pointers: Mapping[str, str]) -> None:
        """The province, parent existence, acyclicity, then which level may sit under which."""
        provinces = [u for u in units.values() if u.level == "province"]
        if not provinces:
            self.fail("/units", "no unit of level 'province'")
        province = provinces[0]
        if len(provinces) > 1:
            extra = provinces[1]
            self.fail(
                _pointer(pointers[extra.code], "level"),
                f"a second unit of level 'province' (the first is {province.code!r} at "
                f"{pointers[province.code]})",
            )
        if province.parent is not None:
            self.fail(_pointer(pointers[province.code], "parent"), "the province has no parent")

        for unit in units.values():
            if unit.level == "province":
                continue
            pointer = _pointer(pointers[unit.code], "parent")
            if unit.parent is None:
                self.fail(pointer, f"a unit of level {unit.level!r} needs a parent")
            if unit.parent not in units:
                self.fail(pointer, f"unknown unit {unit.parent!r}")

        self.check_cycles(units, pointers)

        for unit in units.values():
            pointer = _pointer(pointers[unit.code], "parent")
            parent = units[unit.parent] if unit.parent is not None else None
            if parent is None:
                continue
            if unit.level == "district" and parent.level != "province":
                self.fail(
                    pointer,
                    f"a district's parent must be the province {province.code!r}, "
                    f"not {parent.code!r} ({parent.level})",
                )
            if unit.level in COMMUNE_LEVELS and parent.level not in ("district", "province"):
                self.fail(
                    pointer,
                    f"a {unit.level}'s parent must be a district or the province, "
                    f"not {parent.code!r} ({parent.level})",
                )

    def check_cycles(self, units: Mapping[str, Unit], pointers: Mapping[str, str]) -> None:
        """Fail at the first unit (in file order) whose parent chain comes back to itself."""
        settled: set[str] = set()  # units known to reach the province
        for start in units:
            path: list[str] = []
            on_path: set[str] = set()
            code: str | None = start
            while code is not None and code not in settled:
                if code in on_path:
                    loop = path[path.index(code) :]
                    order = list(units)
                    first = min(loop, key=order.index)
                    self.fail(
                        _pointer(pointers[first], "parent"),
                        "cycle in parent links: " + " -> ".join(_rotate(loop, first)),
                    )
                path.append(code)
                on_path.add(code)
                code = units[code].parent
            settled.update(path)


def _rotate(loop: list[str], first: str) -> Iterator[str]:
    """The codes of a cycle starting (and ending) at `first`."""
    start = loop.index(first)
    yield from loop[start:]
    yield from loop[:start]
    yield first


def _kind(value: object) -> str:
    """The JSON kind of a decoded value, for error details."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
