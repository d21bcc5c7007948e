"""Live streams: the bus (Redis across nodes, in-process alone) and the resume window."""
