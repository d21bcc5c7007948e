"""Where things are: the units' centroids from the province profile, a subject's place
(its own coordinates, or its unit's centroid), and the bounding-box filter of the device,
report and alarm lists.

A subject is placed by its own ``lat`` and ``lon`` when it has both (``located_by`` =
``self``), otherwise at its unit's centroid (``unit``); with neither, it has no place
(``located_by`` null) and no bounding box contains it. A bounding box is ``(min_lon,
min_lat, max_lon, max_lat)``, edges included.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from ops_center.province.profile import Profile
from projections.read.common import Query

#: ``(min_lon, min_lat, max_lon, max_lat)``, edges included.
BBox = tuple[float, float, float, float]

SELF: Final = "self"
UNIT: Final = "unit"


@dataclass(frozen=True, slots=True)
class Places:
    """The units' centroids by code, ``(lat, lon)``."""

    centroids: Mapping[str, tuple[float, float]]

    @classmethod
    def of(cls, profile: Profile) -> Places:
        """The centroids the profile gives (units without both coordinates have none)."""
        return cls(
            {
                code: (unit.lat, unit.lon)
                for code, unit in profile.units.items()
                if unit.lat is not None and unit.lon is not None
            }
        )

    def locate(
        self, unit: str | None, lat: float | None, lon: float | None
    ) -> tuple[float | None, float | None, str | None]:
        """``(lat, lon, located_by)`` of a subject in `unit` with these own coordinates."""
        if lat is not None and lon is not None:
            return lat, lon, SELF
        centroid = None if unit is None else self.centroids.get(unit)
        if centroid is None:
            return None, None, None
        return centroid[0], centroid[1], UNIT

    def units_in(self, bbox: BBox) -> list[str]:
        """The units whose centroid lies in the box (sorted)."""
        return sorted(
            code for code, (lat, lon) in self.centroids.items() if contains(bbox, lat, lon)
        )


def contains(bbox: BBox, lat: float, lon: float) -> bool:
    min_lon, min_lat, max_lon, max_lat = bbox
    return min_lon <= lon <= max_lon and min_lat <= lat <= max_lat


def placed_within(query: Query, bbox: BBox, places: Places, table: str = "") -> None:
    """Add to `query` the condition that the row of `table` (an alias, or none) is placed
    in `bbox`: by its own ``lat``/``lon`` when it has both, else by its ``unit``."""
    p = f"{table}." if table else ""
    min_lon, min_lat, max_lon, max_lat = (query.arg(float(v)) for v in bbox)
    units = query.arg(places.units_in(bbox))
    query.where(
        f"(CASE WHEN {p}lat IS NOT NULL AND {p}lon IS NOT NULL "
        f"THEN {p}lon BETWEEN {min_lon} AND {max_lon} AND {p}lat BETWEEN {min_lat} AND {max_lat} "
        f"ELSE {p}unit = ANY({units}::text[]) END)"
    )
