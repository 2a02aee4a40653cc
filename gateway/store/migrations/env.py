"""Alembic environment. The gateway runs migrations itself at start, handing over an open
connection; the alembic CLI (with -x url=...) works too."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from gateway.store.schema import metadata

config = context.config


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=metadata,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("give the database URL with: alembic -x url=sqlite:///path/gateway.db")
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.begin() as conn:
        _run(conn)
