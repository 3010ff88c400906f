"""The engine's tests may use a real PostgreSQL store (``pg_url``), as the store's own tests do."""

from tests.support.pg import pg_server, pg_url  # noqa: F401  (fixtures)
