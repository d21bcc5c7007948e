"""Validation of a decoded profile document: the rules a province profile follows.

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
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn

from ops_center.province.calendar import TZ_NAME
from ops_center.province.profile import (
    CODE_PATTERN,
    COMMUNE_LEVELS,
    DEFAULT_TIMEZONE,
    UNIT_LEVELS,
    Agency,
    Profile,
    ProfileError,
    Unit,
)


def _pointer(base: str, token: str | int) -> str:
    """`base` extended by one reference token, escaped as RFC 6901 requires."""
    text = str(token).replace("~", "~0").replace("/", "~1")
    return f"{base}/{text}"


class Parser:
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
        if not CODE_PATTERN.fullmatch(value):
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
