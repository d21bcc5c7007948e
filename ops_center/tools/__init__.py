"""Tooling, not the server: benchmarks (`bench`), the simulated province (`simulator`: the
one source of realistic events, for the demo, the load generator, the benchmarks and the
tests that need traffic), the demo and the load generator (`demo`, `loadgen`, `sender`),
the terminal view of a stream (`watch`), and hand-made events with exact values for
tests (`testing`). Their progress lines are `ops_center.runtime.progress`."""
