"""Tooling, not the server: benchmarks (`bench`), the simulated province (`simulator`),
the demo and the load generator (`demo`, `loadgen`, `sender`, `rateline`), the terminal
view of a stream (`watch`), and event factories for tests (`testing`)."""
