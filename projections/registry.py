"""Every projection by name.

Kept out of ``projections/__init__.py`` so that importing it never depends on how the
package was installed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from projections.alarms import AlarmsProjection
from projections.checkpoints import CHECKPOINT_INTERVAL, Checkpointed
from projections.devices import DevicesProjection
from projections.feed import FeedProjection
from projections.kpis import KpisProjection
from projections.projection import Projection
from projections.reports import ReportsProjection
from projections.service_index import ServiceIndexProjection
from projections.services import ServicesProjection

#: Every projection by name, as a factory.
PROJECTIONS: Final[dict[str, Callable[[], Projection]]] = {
    DevicesProjection.name: DevicesProjection,
    ServicesProjection.name: ServicesProjection,
    KpisProjection.name: KpisProjection,
    FeedProjection.name: FeedProjection,
    AlarmsProjection.name: AlarmsProjection,
    ReportsProjection.name: ReportsProjection,
    ServiceIndexProjection.name: ServiceIndexProjection,
}


def create_projections(
    names: list[str] | None = None, *, checkpoint_interval: int = CHECKPOINT_INTERVAL
) -> list[Projection]:
    """Fresh instances of the named projections (all when `names` is None); a projection
    may keep per-chunk state, so every runner gets its own. Those that keep checkpoints
    write one every `checkpoint_interval` positions (0: none, the benchmark's comparison).
    Raises KeyError for an unknown name."""
    chosen = list(PROJECTIONS) if names is None else names
    made = [PROJECTIONS[name]() for name in chosen]
    for projection in made:
        if isinstance(projection, Checkpointed):
            projection.checkpoint_interval = checkpoint_interval
    return made
