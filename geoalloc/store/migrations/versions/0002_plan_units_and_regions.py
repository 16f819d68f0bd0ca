"""Plans keep what the rules count: each assignment's weight and family, each branch's region
(district or district·theme), so a plan loaded back from the store is checked and relocated
under the same rules as the plan that was saved.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('assignments') as batch:
        batch.add_column(sa.Column('weight', sa.Integer(), nullable=False, server_default='1'))
        batch.add_column(sa.Column('group_id', sa.String(length=64), nullable=False, server_default=''))
    with op.batch_alter_table('branches') as batch:
        batch.add_column(sa.Column('region', sa.String(length=96), nullable=False, server_default=''))
    # branches saved before: their region is their district (themed ones are named "district·theme-NNN")
    op.execute("UPDATE branches SET region = district_zh WHERE region = ''")


def downgrade() -> None:
    with op.batch_alter_table('branches') as batch:
        batch.drop_column('region')
    with op.batch_alter_table('assignments') as batch:
        batch.drop_column('group_id')
        batch.drop_column('weight')
