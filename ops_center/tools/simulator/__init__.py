"""A simulated province: the demo profile's stations, cameras, dossiers and KPIs in motion.

Pure (no I/O, seeded chance, the caller's clock): `Province` hands out CloudEvents (dicts
ready to send) in time order. `ops_center.tools.sender` sends them; ``ops-center demo`` and
``ops-center simulate`` drive it.
"""

from ops_center.tools.simulator.province import SCOPES, Province

__all__ = ["SCOPES", "Province"]
