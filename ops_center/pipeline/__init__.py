"""The event pipeline: what happens after an event is committed.

One follower per database (`follower`) reads each chunk of the log once and feeds every
projection and the alarm rules; the stream publisher announces what changed. `assembly`
builds it for a settings object, whether it runs in its own process (`process`:
``ops-center pipeline``, and the child that ``ops-center serve`` starts) or inside the
HTTP process (tests, and ``OPS_CENTER_PIPELINE=inline``). `rebuild` rebuilds projections
from one pass over the log.
"""
