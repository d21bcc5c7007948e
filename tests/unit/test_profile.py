"""The province profile loader: the shipped demo profiles and the validation rules."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ops_center.province.profile import (
    COMMUNE_LEVELS,
    DEMO_PROFILE,
    DEMO_TWO_TIER_PROFILE,
    UNIT_LEVELS,
    Agency,
    Profile,
    ProfileError,
    Unit,
    load_profile,
    parse_profile,
)

SHIPPED = [DEMO_PROFILE, DEMO_TWO_TIER_PROFILE]
ASCII_UPPER_CODE = re.compile(r"[A-Z0-9][A-Z0-9-]*")


def small_profile() -> dict[str, Any]:
    """A valid profile with both layouts mixed: districts and a commune under the province."""
    return {
        "profile": {
            "code": "T",
            "name": "Tỉnh Thử",
            "name_en": "Test Province",
            "demo": True,
            "description": "test data",
            "timezone": "Asia/Ho_Chi_Minh",
        },
        "units": [
            {"code": "T", "name": "Tỉnh Thử", "level": "province", "parent": None},
            {"code": "T-D1", "name": "Huyện Một", "level": "district", "parent": "T"},
            {"code": "T-D2", "name": "Thị xã Hai", "level": "district", "parent": "T"},
            {"code": "T-D1-C1", "name": "Xã Một", "level": "commune", "parent": "T-D1"},
            {"code": "T-D1-W1", "name": "Phường Một", "level": "ward", "parent": "T-D1"},
            {"code": "T-C9", "name": "Xã Chín", "level": "commune", "parent": "T"},
        ],
        "agencies": [
            {"code": "SNV", "name": "Sở Nội vụ", "unit": "T"},
            {"code": "CAT", "name": "Công an tỉnh", "unit": None},
        ],
    }


@pytest.fixture(scope="module")
def demo() -> Profile:
    return load_profile()


@pytest.fixture(scope="module")
def two_tier() -> Profile:
    return load_profile(DEMO_TWO_TIER_PROFILE)


# -- the shipped demo profiles --------------------------------------------------------------


def test_load_profile_without_a_path_loads_the_shipped_three_tier_demo(demo: Profile) -> None:
    assert demo.demo is True
    assert demo.code == "MS"
    assert demo.timezone == "Asia/Ho_Chi_Minh"
    assert "demo" in demo.description.lower()
    assert "Bắc Giang" in demo.description
    assert "Tây Ninh" in demo.description
    levels = [unit.level for unit in demo.units.values()]
    assert 8 <= levels.count("district") <= 10
    commune_level = [level for level in levels if level in COMMUNE_LEVELS]
    assert 110 <= len(commune_level) <= 130
    assert {"commune", "ward", "township"} <= set(commune_level)
    assert 18 <= len(demo.agencies) <= 24
    assert demo.has_agency("STTTT")
    assert demo.agencies["STTTT"].name == "Sở Thông tin và Truyền thông"


def test_three_tier_demo_hangs_districts_on_the_province_and_communes_on_districts(
    demo: Profile,
) -> None:
    for unit in demo.units.values():
        if unit.level == "district":
            assert unit.parent == demo.root.code
        elif unit.level in COMMUNE_LEVELS:
            assert unit.parent is not None
            assert demo.units[unit.parent].level == "district"


def test_two_tier_demo_has_no_districts_and_every_commune_sits_under_the_province(
    two_tier: Profile,
) -> None:
    assert two_tier.demo is True
    levels = [unit.level for unit in two_tier.units.values()]
    assert "district" not in levels
    assert 60 <= sum(level in COMMUNE_LEVELS for level in levels) <= 80
    assert "special_zone" in levels
    for unit in two_tier.units.values():
        if unit.level != "province":
            assert unit.parent == two_tier.root.code
    assert 15 <= len(two_tier.agencies) <= 24


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_profiles_use_short_ascii_upper_case_codes_unique_across_units_and_agencies(
    path: Path,
) -> None:
    profile = load_profile(path)
    codes = [*profile.units, *profile.agencies]
    assert len(codes) == len(set(codes))
    for code in codes:
        assert ASCII_UPPER_CODE.fullmatch(code), code
        assert len(code) <= 16


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_profiles_give_every_unit_and_agency_an_english_name_and_a_home_unit(
    path: Path,
) -> None:
    profile = load_profile(path)
    for unit in profile.units.values():
        assert unit.name_en
        assert unit.name_en.isascii()
        assert unit.lat is not None
        assert unit.lon is not None
        assert 8.0 <= unit.lat <= 23.5
        assert 102.0 <= unit.lon <= 110.0
    for agency in profile.agencies.values():
        assert agency.name_en
        assert agency.unit is not None
        assert profile.has_unit(agency.unit)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_centroids_draw_one_province_with_communes_near_their_district(
    path: Path,
) -> None:
    """The map places each commune at its own centroid (none shared), inside a province
    of a plausible size, and near its district's centroid."""
    profile = load_profile(path)
    root = profile.root
    communes = [u for u in profile.units.values() if u.level not in ("province", "district")]
    assert len({(u.lat, u.lon) for u in communes}) == len(communes)
    for unit in communes:
        assert unit.lat is not None
        assert unit.lon is not None
        assert root.lat is not None
        assert root.lon is not None
        assert abs(unit.lat - root.lat) < 1.0
        assert abs(unit.lon - root.lon) < 1.5
        parent = profile.units[unit.parent or ""]
        if parent.level == "district":
            assert parent.lat is not None
            assert parent.lon is not None
            assert abs(unit.lat - parent.lat) + abs(unit.lon - parent.lon) < 0.25


# -- tree queries ---------------------------------------------------------------------------


def test_descendants_of_a_district_are_the_district_and_its_communes(demo: Profile) -> None:
    district = demo.units["MS-D03"]
    children = {u.code for u in demo.units.values() if u.parent == district.code}
    assert children
    assert demo.descendants(district.code) == frozenset({district.code, *children})


def test_descendants_of_the_province_are_every_unit(demo: Profile, two_tier: Profile) -> None:
    assert demo.descendants(demo.root.code) == frozenset(demo.units)
    assert two_tier.descendants(two_tier.root.code) == frozenset(two_tier.units)


def test_descendants_of_a_commune_are_only_the_commune(demo: Profile) -> None:
    assert demo.descendants("MS-D03-C02") == frozenset({"MS-D03-C02"})


def test_ancestors_run_from_the_nearest_parent_up_to_the_province(
    demo: Profile, two_tier: Profile
) -> None:
    assert demo.ancestors("MS-D03-C02") == ("MS-D03", "MS")
    assert demo.ancestors("MS-D03") == ("MS",)
    assert demo.ancestors("MS") == ()
    commune = next(u.code for u in two_tier.units.values() if u.level == "commune")
    assert two_tier.ancestors(commune) == ("MS",)


def test_tree_queries_raise_key_error_for_an_unknown_code(demo: Profile) -> None:
    with pytest.raises(KeyError):
        demo.descendants("NOPE")
    with pytest.raises(KeyError):
        demo.ancestors("NOPE")
    assert not demo.has_unit("NOPE")
    assert not demo.has_agency("NOPE")
    assert not demo.has_unit("STTTT")
    assert not demo.has_agency("MS")


def test_root_is_the_single_province_unit(demo: Profile) -> None:
    assert demo.root == demo.units["MS"]
    assert demo.root.level == "province"
    assert demo.root.parent is None


def test_mixed_layout_accepts_communes_under_a_district_or_directly_under_the_province() -> None:
    profile = parse_profile(small_profile())
    assert profile.descendants("T") == frozenset(profile.units)
    assert profile.descendants("T-D1") == {"T-D1", "T-D1-C1", "T-D1-W1"}
    assert profile.descendants("T-D2") == {"T-D2"}
    assert profile.ancestors("T-C9") == ("T",)


def test_parents_may_be_listed_after_their_children() -> None:
    raw = small_profile()
    raw["units"].reverse()
    profile = parse_profile(raw)
    assert profile.ancestors("T-D1-C1") == ("T-D1", "T")
    assert list(profile.units) == [u["code"] for u in raw["units"]]


# -- shapes ---------------------------------------------------------------------------------


def test_units_and_agencies_keep_file_order_and_are_read_only() -> None:
    profile = parse_profile(small_profile())
    assert list(profile.units) == ["T", "T-D1", "T-D2", "T-D1-C1", "T-D1-W1", "T-C9"]
    assert list(profile.agencies) == ["SNV", "CAT"]
    assert profile.units["T-D1"] == Unit(
        code="T-D1", name="Huyện Một", level="district", parent="T"
    )
    assert profile.agencies["CAT"] == Agency(code="CAT", name="Công an tỉnh", unit=None)
    with pytest.raises(TypeError):
        profile.units["X"] = profile.root  # type: ignore[index]


def test_unit_json_lists_code_name_name_en_level_parent_and_coordinates_only_when_set() -> None:
    raw = small_profile()
    raw["units"][1].update({"name_en": "Mot District", "lat": 21.5, "lon": 106})
    items = parse_profile(raw).unit_json()
    assert items[0] == {
        "code": "T",
        "name": "Tỉnh Thử",
        "name_en": None,
        "level": "province",
        "parent": None,
    }
    assert items[1] == {
        "code": "T-D1",
        "name": "Huyện Một",
        "name_en": "Mot District",
        "level": "district",
        "parent": "T",
        "lat": 21.5,
        "lon": 106.0,
    }
    assert [item["code"] for item in items] == list(parse_profile(raw).units)


def test_agency_json_lists_code_name_name_en_and_unit() -> None:
    assert parse_profile(small_profile()).agency_json() == [
        {"code": "SNV", "name": "Sở Nội vụ", "name_en": None, "unit": "T"},
        {"code": "CAT", "name": "Công an tỉnh", "name_en": None, "unit": None},
    ]


def test_unit_json_returns_a_fresh_list_each_call(demo: Profile) -> None:
    first = demo.unit_json()
    first.clear()
    assert len(demo.unit_json()) == len(demo.units)


def test_optional_profile_fields_take_their_defaults() -> None:
    raw = small_profile()
    raw["profile"] = {"code": "T", "name": "Tỉnh Thử"}
    del raw["agencies"]
    profile = parse_profile(raw)
    assert profile.demo is False
    assert profile.description == ""
    assert profile.timezone == "Asia/Ho_Chi_Minh"
    assert profile.name_en is None
    assert dict(profile.agencies) == {}


def test_levels_are_the_six_documented_ones() -> None:
    assert (
        frozenset({"province", "district", "commune", "ward", "township", "special_zone"})
        == UNIT_LEVELS
    )


# -- files ----------------------------------------------------------------------------------


def test_load_profile_reads_a_file_given_as_str_or_path(tmp_path: Path) -> None:
    import orjson

    file = tmp_path / "tinh.json"
    file.write_bytes(orjson.dumps(small_profile()))
    assert load_profile(file).units == load_profile(str(file)).units
    assert load_profile(file).root.code == "T"


def test_load_profile_reports_invalid_json_naming_the_file(tmp_path: Path) -> None:
    file = tmp_path / "broken.json"
    file.write_text('{"profile": ', encoding="utf-8")
    with pytest.raises(ProfileError, match=r"broken\.json: not valid JSON"):
        load_profile(file)


def test_load_profile_reports_a_missing_file_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"absent\.json: cannot read the file"):
        load_profile(tmp_path / "absent.json")


def test_load_profile_errors_name_the_file_then_the_pointer(tmp_path: Path) -> None:
    import orjson

    raw = small_profile()
    raw["units"][3]["parent"] = "X"
    file = tmp_path / "demo.json"
    file.write_bytes(orjson.dumps(raw))
    with pytest.raises(ProfileError) as caught:
        load_profile(file)
    assert str(caught.value) == f"{file}: /units/3/parent: unknown unit 'X'"
    assert caught.value.pointer == "/units/3/parent"
    assert caught.value.origin == str(file)


# -- validation -----------------------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], Any]


def _set(*path: str | int, value: Any) -> Mutation:
    """A mutation setting the value at `path` (the last key is created if needed)."""

    def mutate(raw: dict[str, Any]) -> None:
        target: Any = raw
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _delete(*path: str | int) -> Mutation:
    def mutate(raw: dict[str, Any]) -> None:
        target: Any = raw
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


def _both(first: Mutation, second: Mutation) -> Mutation:
    def mutate(raw: dict[str, Any]) -> None:
        first(raw)
        second(raw)

    return mutate


def _replace_document(value: Any) -> Mutation:
    def mutate(raw: dict[str, Any]) -> Any:
        return value

    return mutate


INVALID: list[Any] = [
    # shapes
    pytest.param(_replace_document([]), "(root)", "expected a JSON object", id="not-an-object"),
    pytest.param(_delete("profile"), "/profile", "missing", id="profile-missing"),
    pytest.param(_set("profile", value="MS"), "/profile", "JSON object", id="profile-not-object"),
    pytest.param(_delete("profile", "code"), "/profile/code", "missing", id="profile-no-code"),
    pytest.param(_set("profile", "name", value=" "), "/profile/name", "empty", id="profile-name"),
    pytest.param(_set("profile", "demo", value="yes"), "/profile/demo", "true or false", id="demo"),
    pytest.param(_delete("units"), "/units", "missing", id="units-missing"),
    pytest.param(_set("units", value={}), "/units", "JSON array", id="units-not-array"),
    pytest.param(_set("agencies", value={}), "/agencies", "JSON array", id="agencies-not-array"),
    pytest.param(_set("units", 2, value="T-D2"), "/units/2", "JSON object", id="unit-not-object"),
    pytest.param(_set("agencies", 1, value=7), "/agencies/1", "JSON object", id="agency-not-obj"),
    # codes and names
    pytest.param(_delete("units", 1, "code"), "/units/1/code", "missing", id="unit-no-code"),
    pytest.param(_set("units", 1, "code", value=""), "/units/1/code", "empty", id="empty-code"),
    pytest.param(
        _set("units", 1, "code", value="T D1"), "/units/1/code", "invalid code", id="code-space"
    ),
    pytest.param(_delete("units", 3, "name"), "/units/3/name", "missing", id="unit-no-name"),
    pytest.param(_set("units", 3, "name", value=""), "/units/3/name", "empty", id="empty-name"),
    pytest.param(
        _set("units", 1, "name_en", value=5), "/units/1/name_en", "string", id="name-en-not-str"
    ),
    pytest.param(_delete("agencies", 0, "code"), "/agencies/0/code", "missing", id="agency-code"),
    pytest.param(_set("agencies", 0, "name", value=""), "/agencies/0/name", "empty", id="ag-name"),
    # uniqueness across units and agencies
    pytest.param(
        _set("units", 2, "code", value="T-D1"),
        "/units/2/code",
        "duplicate code 'T-D1' (already used at /units/1)",
        id="duplicate-unit-code",
    ),
    pytest.param(
        _set("agencies", 1, "code", value="SNV"),
        "/agencies/1/code",
        "duplicate code 'SNV'",
        id="duplicate-agency-code",
    ),
    pytest.param(
        _set("agencies", 0, "code", value="T-D2"),
        "/agencies/0/code",
        "duplicate code 'T-D2' (already used at /units/2)",
        id="agency-code-clashes-with-unit",
    ),
    # levels and the province
    pytest.param(
        _set("units", 3, "level", value="village"), "/units/3/level", "unknown level", id="level"
    ),
    pytest.param(_delete("units", 3, "level"), "/units/3/level", "missing", id="level-missing"),
    pytest.param(
        _set("units", 0, "level", value="district"),
        "/units",
        "no unit of level 'province'",
        id="no-province",
    ),
    pytest.param(_set("units", value=[]), "/units", "no unit of level 'province'", id="no-units"),
    pytest.param(
        _both(_set("units", 2, "level", value="province"), _set("units", 2, "parent", value=None)),
        "/units/2/level",
        "a second unit of level 'province'",
        id="two-provinces",
    ),
    pytest.param(
        _set("units", 0, "parent", value="T-D1"),
        "/units/0/parent",
        "the province has no parent",
        id="province-with-parent",
    ),
    # parents
    pytest.param(
        _set("units", 1, "parent", value=None),
        "/units/1/parent",
        "needs a parent",
        id="district-without-parent",
    ),
    pytest.param(
        _delete("units", 3, "parent"), "/units/3/parent", "needs a parent", id="parent-missing"
    ),
    pytest.param(
        _set("units", 3, "parent", value="X"),
        "/units/3/parent",
        "unknown unit 'X'",
        id="unknown-parent",
    ),
    pytest.param(
        _set("units", 3, "parent", value=3), "/units/3/parent", "unit code", id="parent-not-str"
    ),
    pytest.param(
        _set("units", 1, "parent", value="T-D1"),
        "/units/1/parent",
        "cycle in parent links: T-D1 -> T-D1",
        id="self-parent",
    ),
    pytest.param(
        _both(_set("units", 1, "parent", value="T-D2"), _set("units", 2, "parent", value="T-D1")),
        "/units/1/parent",
        "cycle in parent links: T-D1 -> T-D2 -> T-D1",
        id="two-unit-cycle",
    ),
    pytest.param(
        _both(
            _set("units", 1, "parent", value="T-D1-C1"), _set("units", 3, "parent", value="T-D1")
        ),
        "/units/1/parent",
        "cycle in parent links: T-D1 -> T-D1-C1 -> T-D1",
        id="district-commune-cycle",
    ),
    # which level may sit under which
    pytest.param(
        _set("units", 2, "parent", value="T-D1"),
        "/units/2/parent",
        "a district's parent must be the province 'T'",
        id="district-under-district",
    ),
    pytest.param(
        _set("units", 2, "parent", value="T-C9"),
        "/units/2/parent",
        "a district's parent must be the province",
        id="district-under-commune",
    ),
    pytest.param(
        _set("units", 5, "parent", value="T-D1-C1"),
        "/units/5/parent",
        "a commune's parent must be a district or the province",
        id="commune-under-commune",
    ),
    pytest.param(
        _set("units", 4, "parent", value="T-D1-C1"),
        "/units/4/parent",
        "a ward's parent must be a district or the province",
        id="ward-under-commune",
    ),
    pytest.param(
        _both(
            _set("units", 5, "level", value="special_zone"),
            _set("units", 3, "parent", value="T-C9"),
        ),
        "/units/3/parent",
        "a commune's parent must be a district or the province",
        id="commune-under-special-zone",
    ),
    # agencies' units
    pytest.param(
        _set("agencies", 0, "unit", value="X"),
        "/agencies/0/unit",
        "unknown unit 'X'",
        id="agency-unknown-unit",
    ),
    pytest.param(
        _set("agencies", 1, "unit", value="SNV"),
        "/agencies/1/unit",
        "unknown unit 'SNV'",
        id="agency-unit-is-an-agency",
    ),
    # coordinates
    pytest.param(_set("units", 3, "lat", value=95), "/units/3/lat", "between -90", id="lat-range"),
    pytest.param(
        _set("units", 3, "lon", value=-180.5), "/units/3/lon", "between -180", id="lon-range"
    ),
    pytest.param(_set("units", 3, "lat", value="21.3"), "/units/3/lat", "number", id="lat-string"),
    pytest.param(_set("units", 3, "lon", value=True), "/units/3/lon", "number", id="lon-bool"),
    pytest.param(
        _set("units", 3, "lat", value=float("nan")), "/units/3/lat", "between", id="lat-nan"
    ),
]


@pytest.mark.parametrize(("mutate", "pointer", "detail"), INVALID)
def test_invalid_profile_raises_profile_error_naming_origin_and_pointer(
    mutate: Mutation, pointer: str, detail: str
) -> None:
    raw = small_profile()
    replaced = mutate(raw)
    document = raw if replaced is None else replaced
    with pytest.raises(ProfileError) as caught:
        parse_profile(document, origin="tinh.json")
    message = str(caught.value)
    assert message.startswith(f"tinh.json: {pointer}: "), message
    assert detail in message
    assert caught.value.pointer == ("" if pointer == "(root)" else pointer)


def test_profile_error_is_a_value_error() -> None:
    assert issubclass(ProfileError, ValueError)


def test_valid_small_profile_is_accepted_unchanged_by_parse() -> None:
    raw = small_profile()
    before = copy.deepcopy(raw)
    parse_profile(raw)
    assert raw == before


def test_coordinates_at_the_limits_are_accepted() -> None:
    raw = small_profile()
    raw["units"][3].update({"lat": -90, "lon": 180.0})
    unit = parse_profile(raw).units["T-D1-C1"]
    assert (unit.lat, unit.lon) == (-90.0, 180.0)
