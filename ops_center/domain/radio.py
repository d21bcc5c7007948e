"""Commune smart-radio stations: loudspeaker clusters and broadcasts."""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ops_center.domain.errors import INVALID_TRANSITION, Rejection, invalid_data
from ops_center.domain.provenance import Meta, is_current, occurred, record, subject_id

#: How many ended broadcast ids a station remembers to refuse a restart of the same id.
ENDED_MEMORY = 256


class RadioStation(Aggregate):
    """A commune radio station: status, speaker-cluster faults and what is on air."""

    @staticmethod
    def create_id(code: str, **_: Any) -> UUID:
        return subject_id("station", code)

    @event("Registered")
    def __init__(
        self,
        code: str,
        name: str,
        unit: str,
        clusters: int,
        lat: float | None,
        lon: float | None,
        meta: Meta,
    ) -> None:
        self.code = code
        self.name = name
        self.unit = unit
        self.clusters = clusters
        self.lat = lat
        self.lon = lon
        self.registered_time: datetime = occurred(meta)
        self.status: str | None = None
        self.status_time: datetime | None = None
        self.on_air: dict[str, str] = {}
        self.ended: OrderedDict[str, None] = OrderedDict()
        self.faults: dict[int, str] = {}
        self.cluster_times: dict[int, datetime] = {}

    def register_again(
        self,
        name: str,
        unit: str,
        clusters: int,
        lat: float | None,
        lon: float | None,
        meta: Meta,
    ) -> None:
        """Record a repeated registration; only a newer one changes the station's details."""
        record(
            self,
            "Reregistered",
            name=name,
            unit=unit,
            clusters=clusters,
            lat=lat,
            lon=lon,
            meta=meta,
        )

    @event("Reregistered")
    def _reregistered(
        self,
        name: str,
        unit: str,
        clusters: int,
        lat: float | None,
        lon: float | None,
        meta: Meta,
    ) -> None:
        if is_current(meta, self.registered_time):
            self.name, self.unit, self.clusters, self.lat, self.lon = name, unit, clusters, lat, lon
            self.registered_time = occurred(meta)

    def report_status(self, status: str, meta: Meta) -> None:
        """Record a status report; an older report is kept as history only."""
        record(self, "StatusReported", status=status, meta=meta)

    @event("StatusReported")
    def _status_reported(self, status: str, meta: Meta) -> None:
        if is_current(meta, self.status_time):
            self.status = status
            self.status_time = occurred(meta)

    def start_broadcast(self, broadcast_id: str, program: str, kind: str, meta: Meta) -> None:
        """Put a broadcast on air; the same broadcast id cannot start twice."""
        if broadcast_id in self.on_air or broadcast_id in self.ended:
            raise Rejection(
                INVALID_TRANSITION,
                "/data/broadcast_id",
                f"broadcast {broadcast_id!r} has already started on station {self.code!r}",
            )
        record(
            self,
            "BroadcastStarted",
            broadcast_id=broadcast_id,
            program=program,
            kind=kind,
            meta=meta,
        )

    @event("BroadcastStarted")
    def _broadcast_started(self, broadcast_id: str, program: str, kind: str, meta: Meta) -> None:
        self.on_air[broadcast_id] = kind

    def end_broadcast(self, broadcast_id: str, meta: Meta) -> None:
        """Take a broadcast off air; only a broadcast on air can end."""
        if broadcast_id not in self.on_air:
            raise Rejection(
                INVALID_TRANSITION,
                "/data/broadcast_id",
                f"broadcast {broadcast_id!r} is not on air on station {self.code!r}",
            )
        record(self, "BroadcastEnded", broadcast_id=broadcast_id, meta=meta)

    @event("BroadcastEnded")
    def _broadcast_ended(self, broadcast_id: str, meta: Meta) -> None:
        self.on_air.pop(broadcast_id, None)
        self.ended[broadcast_id] = None
        while len(self.ended) > ENDED_MEMORY:
            self.ended.popitem(last=False)

    def _check_cluster(self, cluster: int) -> None:
        if cluster > self.clusters:
            raise invalid_data(
                "cluster", f"station {self.code!r} has {self.clusters} clusters (1-{self.clusters})"
            )

    def report_fault(self, cluster: int, fault: str, meta: Meta) -> None:
        """Record a fault of one speaker cluster (1-based)."""
        self._check_cluster(cluster)
        record(self, "ClusterFaulted", cluster=cluster, fault=fault, meta=meta)

    @event("ClusterFaulted")
    def _cluster_faulted(self, cluster: int, fault: str, meta: Meta) -> None:
        if is_current(meta, self.cluster_times.get(cluster)):
            self.faults[cluster] = fault
            self.cluster_times[cluster] = occurred(meta)

    def restore_cluster(self, cluster: int, meta: Meta) -> None:
        """Record that a cluster works again (accepted even if no fault was known)."""
        self._check_cluster(cluster)
        record(self, "ClusterRestored", cluster=cluster, meta=meta)

    @event("ClusterRestored")
    def _cluster_restored(self, cluster: int, meta: Meta) -> None:
        if is_current(meta, self.cluster_times.get(cluster)):
            self.faults.pop(cluster, None)
            self.cluster_times[cluster] = occurred(meta)
