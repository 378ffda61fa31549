"""computed tokens: the tokens that went through the model for each request (the MFU
count), NULL for rows written before

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("request_timings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("computed_tokens", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("request_timings", schema=None) as batch_op:
        batch_op.drop_column("computed_tokens")
