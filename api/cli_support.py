"""What ``geoalloc serve`` and ``geoalloc keys ...`` call (the lead wires them into the typer CLI)."""

from __future__ import annotations

from geoalloc.store.keys import create_key, format_time, list_keys, revoke_key

__all__ = ["create_key", "format_time", "list_keys", "revoke_key", "serve"]


def serve(host: str = "127.0.0.1", port: int = 8000, db_url: str | None = None, access_log: bool = False) -> None:
    """Run the API with uvicorn; the SQLite database (or ``db_url``) is created on first start.

    No per-request access log unless ``access_log``: a log line per relocation costs the event
    loop more than parsing the request does; ``/metrics`` counts every request by route and
    status, and errors are logged. ``benchmarks/api.py`` measures the service this way.
    """
    import uvicorn

    from api.app import create_app
    from api.settings import Settings
    from geoalloc.store.db import StorageUnavailable

    settings = Settings() if db_url is None else Settings(database_url=db_url)
    try:
        app = create_app(settings)
    except StorageUnavailable as exc:  # a sentence, not a traceback: the operator has one thing to fix
        raise SystemExit(f"geoalloc serve: {exc}") from None
    # uvloop and httptools (uvicorn[standard]) named outright: "auto" would fall back to the slower
    # pure-Python loop and parser without a word if they were ever missing.
    uvicorn.run(app, host=host, port=port, log_level="info", loop="uvloop", http="httptools",
                access_log=access_log)
