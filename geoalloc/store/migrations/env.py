"""Alembic environment: runs on the connection ``init_db`` hands over, or on a URL.

Shipped inside the package so that an installed geoalloc can create and upgrade its own
database (``geoalloc serve`` calls ``init_db`` on start).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from geoalloc.store.models import Base

config = context.config
target_metadata = Base.metadata


def _include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Leave the PostGIS ``geom`` columns and their indexes (made by hand in 0001) to the migrations."""
    return not (name or "").endswith("geom")


def run_migrations_online() -> None:
    """Use the caller's connection when given (one transaction), else connect to the URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                          include_object=_include_object)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL for the migrations (set GEOALLOC_DATABASE_URL)")
    engine = create_engine(str(url))
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True,
                          include_object=_include_object)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def run_migrations_offline() -> None:
    """Emit SQL for the configured URL without connecting."""
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
