"""The database a command uses: ``DATABASE_URL`` when it is set, else the embedded
PostgreSQL in the settings' data folder (started if no server runs there yet)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ops_center.settings import Settings


@contextmanager
def database_url(settings: Settings) -> Iterator[str]:
    """The configured database, or the embedded one in `data_dir`.

    The embedded server is stopped afterwards only if this command started it: when a
    running `ops-center serve` owns it, it is left running.
    """
    if settings.database_url is not None:
        yield settings.database_url
        return
    from ops_center.embedded.postgres import EmbeddedPostgres

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    server = EmbeddedPostgres(settings.data_dir)
    url = server.start()
    try:
        yield url
    finally:
        if not server.reused:
            server.stop()
