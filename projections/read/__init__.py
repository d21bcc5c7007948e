"""Reading the read models: the answers of the leaders' queries, as plain JSON-ready dicts.

Every function takes a connection inside a REPEATABLE READ transaction (so positions and
tables are one snapshot) and returns what `web.queries` sends. Times are answered in
Vietnam time (+07:00); "today", days, months and buckets are Asia/Ho_Chi_Minh.

Time travel (`as_of`): the state "as the projection stood at moment T" is the state after
the events recorded at or before T. `position_at` finds the last such position by binary
search over the log (about 25 index probes at 10 million events); then

* devices from the last checkpoint at or before the position (``rm_device_checkpoints``,
  `projections.checkpoints`) and the ``rm_device_history`` rows since (one primary-key
  probe per device changed in between) and broadcasts from
  ``rm_broadcasts.on_air`` (a GiST index on the range of positions it was on air);
* dossiers from ``rm_dossiers`` (``received_position``, ``closed_position`` and the
  GiST-indexed ``open_positions``), with the clock set to T for "today" and "overdue";
  the overdue ones from the last checkpoint (``rm_dossier_checkpoints``: the dossiers in
  progress by unit and day due), the dossiers due on T's day up to T, and those received
  or closed since the checkpoint;
* KPIs from ``rm_kpi_log`` up to the position, in SQL (per indicator and period the
  event with the latest CloudEvent time wins, as in the projection's fold; cost: a scan
  of the indicator events up to then, a small log since indicators report monthly or
  quarterly).

* citizens' reports from ``rm_reports`` (``received_position``, ``closed_position``,
  ``rated_position`` and the GiST-indexed ``open_positions``) and, for a report assigned
  more than once, ``rm_report_history`` (the assignment in effect by then).

The overview combines five projections. When their positions differ (one is catching up
or rebuilding) it answers from the history at the smallest of them, so an answer is always
one consistent position of the log.
"""

from __future__ import annotations

from projections.read.common import (
    CAMERA_STATUSES,
    DUE_SOON,
    OVERVIEW_PROJECTIONS,
    RADIO_STATUSES,
    Query,
    Scope,
    position_at,
    positions,
)
from projections.read.devices import device_detail, device_list, devices_by_id
from projections.read.feed import feed
from projections.read.kpis import kpi_history, kpi_list
from projections.read.overview import overview, overview_at
from projections.read.places import BBox, Places
from projections.read.reports import (
    decode_cursor,
    open_reports,
    report_detail,
    report_list,
    report_stats,
)
from projections.read.services import overdue_list, service_stats, units_present

__all__ = [
    "CAMERA_STATUSES",
    "DUE_SOON",
    "OVERVIEW_PROJECTIONS",
    "RADIO_STATUSES",
    "BBox",
    "Places",
    "Query",
    "Scope",
    "decode_cursor",
    "device_detail",
    "device_list",
    "devices_by_id",
    "feed",
    "kpi_history",
    "kpi_list",
    "open_reports",
    "overdue_list",
    "overview",
    "overview_at",
    "position_at",
    "positions",
    "report_detail",
    "report_list",
    "report_stats",
    "service_stats",
    "units_present",
]
