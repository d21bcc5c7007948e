"""A simulated province: the demo profile's stations, cameras, dossiers and KPIs in motion.

The one source of realistic events of the tools. Pure (no I/O, seeded chance, the
caller's clock): `Province` hands out CloudEvents (dicts ready to send) in time order,
with the profile's own layout or sized (a number of cameras and stations over its
communes). `ops_center.tools.sender` sends them; ``ops-center demo`` and ``ops-center
simulate`` drive it; `traffic` hands a sized province out as a benchmark's workload
(its opening, then lanes by subject for concurrent senders); `recording` records events
in-process through `OpsCenter.ingest` (the one module here that loads the store, not
imported by this package).
"""

from ops_center.tools.simulator.province import SCOPES, Province

__all__ = ["SCOPES", "Province"]
