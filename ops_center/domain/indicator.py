"""Indicators (KPIs) of the province's digital-transformation resolutions."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ops_center.domain.provenance import Meta, is_current, occurred, record, subject_id


class Indicator(Aggregate):
    """A KPI: its definition, target and reported values by period."""

    @staticmethod
    def create_id(code: str, **_: Any) -> UUID:
        return subject_id("indicator", code)

    @event("Defined")
    def __init__(
        self,
        code: str,
        name: str,
        measure: str,
        owner: str,
        pillar: str,
        direction: str,
        target: float,
        deadline: str,
        reference: str | None,
        meta: Meta,
    ) -> None:
        self.code = code
        self.owner = owner
        self.direction = direction
        self.target = target
        self.deadline = deadline
        self.defined_time: datetime = occurred(meta)
        self.target_time: datetime = occurred(meta)
        self.values: dict[str, float] = {}
        self.value_times: dict[str, datetime] = {}

    def define_again(
        self,
        name: str,
        measure: str,
        owner: str,
        pillar: str,
        direction: str,
        target: float,
        deadline: str,
        reference: str | None,
        meta: Meta,
    ) -> None:
        """Record a repeated definition; only a newer one changes the indicator."""
        record(
            self,
            "Redefined",
            name=name,
            measure=measure,
            owner=owner,
            pillar=pillar,
            direction=direction,
            target=target,
            deadline=deadline,
            reference=reference,
            meta=meta,
        )

    @event("Redefined")
    def _redefined(
        self,
        name: str,
        measure: str,
        owner: str,
        pillar: str,
        direction: str,
        target: float,
        deadline: str,
        reference: str | None,
        meta: Meta,
    ) -> None:
        if is_current(meta, self.defined_time):
            self.owner, self.direction = owner, direction
            self.defined_time = occurred(meta)
        if is_current(meta, self.target_time):
            self.target, self.deadline = target, deadline
            self.target_time = occurred(meta)

    def report(self, period: str, value: float, meta: Meta) -> None:
        """Record the value for a period; a newer report for the same period replaces it."""
        record(self, "Reported", period=period, value=value, meta=meta)

    @event("Reported")
    def _reported(self, period: str, value: float, meta: Meta) -> None:
        if is_current(meta, self.value_times.get(period)):
            self.values[period] = value
            self.value_times[period] = occurred(meta)

    def revise_target(self, target: float, deadline: str, meta: Meta) -> None:
        """Record a revised target and deadline; an older revision is history only."""
        record(self, "TargetRevised", target=target, deadline=deadline, meta=meta)

    @event("TargetRevised")
    def _target_revised(self, target: float, deadline: str, meta: Meta) -> None:
        if is_current(meta, self.target_time):
            self.target, self.deadline = target, deadline
            self.target_time = occurred(meta)
