"""Service settings from the environment (prefix ``GEOALLOC_``), e.g. ``GEOALLOC_DATABASE_URL``."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from geoalloc.store.db import DEFAULT_URL


class Settings(BaseSettings):
    """Everything an operator may set; the defaults run a local service on SQLite."""

    model_config = SettingsConfigDict(env_prefix="GEOALLOC_", extra="ignore")

    database_url: str = Field(DEFAULT_URL, description="SQLAlchemy URL; SQLite file by default, postgresql+psycopg://... for PostGIS")
    job_workers: int = Field(1, ge=1, le=8, description="threads running plan jobs (forming, rebalancing)")
    max_upload_mb: int = Field(20, ge=1, description="largest roster file POST /members/import accepts")
    max_unpacked_mb: int = Field(64, ge=1, description="largest unpacked size of an .xlsx roster (a zip)")
    max_import_rows: int = Field(100_000, ge=1, description="most rows one roster import may have")
    max_body_kb: int = Field(64, ge=1, description="largest JSON body of any other request")
    max_bulk_mb: int = Field(8, ge=1, description="largest body of POST /relocations (up to 10,000 items)")
    viewer_site_decimals: int = Field(2, ge=0, le=6, description="viewers see branch sites rounded to this many decimals (2 = ~1 km)")
    init_db: bool = Field(True, description="create/upgrade the schema on start")
    switch_interval_ms: float = Field(
        1.0, gt=0, le=100,
        description="Python's thread switch interval for the serving process (default 5 ms). The event loop and "
                    "the relocation writer hand the GIL back and forth around every database call; a short "
                    "interval keeps either from waiting a full 5 ms for it.")
