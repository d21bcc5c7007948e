"""The domain: aggregates that decide what an incoming fact means. No I/O here.

Every aggregate is identified by a UUID derived from its kind and code, so an event's
`subject` maps to exactly one aggregate. Every domain event carries `meta`: the
CloudEvent's `source`, `id` and `time`, when it was received and by which key.
"""

from ops_center.domain.camera import Camera
from ops_center.domain.dossier import Dossier
from ops_center.domain.indicator import Indicator
from ops_center.domain.provenance import Meta, subject_id
from ops_center.domain.radio import RadioStation
from ops_center.domain.report import Report

__all__ = ["Camera", "Dossier", "Indicator", "Meta", "RadioStation", "Report", "subject_id"]
