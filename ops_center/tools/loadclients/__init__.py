"""Lean load clients for the benchmarks: they run in their own processes and spend as
little CPU as they can, so that on a small machine the figures are the server's.

* `screens`: WebSocket screens with a hand-written RFC 6455 client that only looks for
  each frame's ``op`` and ``position`` (no JSON parsing of snapshots).
* `http`: keep-alive HTTP/1.1 ingest with pre-built requests, open or closed loop.
* `wrk`: Debian's ``wrk`` sending single CloudEvents, for a cross-check of the
  single-event figures by a client written in C.
* `cpu`: CPU seconds per process kind (server processes, PostgreSQL and its backends,
  the clients) and of the whole machine over a phase.
* `latency`: acknowledgement times, histograms and the ack-to-frame computations.

Times are ``time.monotonic_ns()`` everywhere: CLOCK_MONOTONIC is one clock for every
process of a Linux machine, so a frame's arrival in a screen process compares with an
acknowledgement taken in an ingest process. See docs/LOADCLIENTS.md.

Nothing here imports the server's code: the clients see only its HTTP and WebSocket
protocols.
"""
