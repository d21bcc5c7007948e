"""One node of the center as processes: the supervisor of ``ops-center serve``
(`supervisor`, `serve`) and its children's entry point (`child`)."""
