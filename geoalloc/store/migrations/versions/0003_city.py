"""Members, assignments and branches keep their city (``city_zh``), so a national roster's plan
reads back from the store with its regions (city, district) and its map per city. Rows saved
before are Shenzhen's: their city stays empty, as a roster without ``city_zh`` means.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

_TABLES = ("members", "assignments", "branches")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column('city_zh', sa.String(length=32), nullable=False, server_default=''))


def downgrade() -> None:
    for table in reversed(_TABLES):
        with op.batch_alter_table(table) as batch:
            batch.drop_column('city_zh')
