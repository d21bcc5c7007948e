"""Read models built from the event log, and the runner that keeps them up to date.

`projections.registry.PROJECTIONS` names every projection; `projections.projection` follows
the log; `web.queries` answers the leaders' queries from the tables.
"""
