"""The alarm rules' thresholds (settings ``alarm_*``; defaults documented in the README)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Final

DEFAULT_OFFLINE_GRACE: Final = timedelta(minutes=5)
DEFAULT_ALERT_HOLD: Final = timedelta(minutes=30)
DEFAULT_DOSSIER_GRACE: Final = timedelta(0)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """How long a cause must last before it raises, or how long it lasts.

    * `offline_grace`: a camera offline or degraded, or a radio station offline, raises
      only once it has been so for this long (a short outage raises nothing);
    * `alert_hold`: a critical camera alert keeps its alarm open this long after the
      latest critical alert of that camera; then the alarm resolves by itself;
    * `dossier_grace`: a dossier raises this long after its due time if still open.
    """

    offline_grace: timedelta = DEFAULT_OFFLINE_GRACE
    alert_hold: timedelta = DEFAULT_ALERT_HOLD
    dossier_grace: timedelta = DEFAULT_DOSSIER_GRACE
