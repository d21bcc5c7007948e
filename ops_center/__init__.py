"""Operations center core: domain, ingest, event store, keys, configuration, command line."""

__version__ = "0.1.0"
