"""latency and cost: run cost inputs (hardware profile name, energy, model size) and
the latency probe's tables

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

RUN_COLUMNS = (
    ("hardware_profile", sa.String(length=64)),
    ("energy_j", sa.Float()),
    ("energy_note", sa.Text()),
    ("model_params", sa.BigInteger()),
    ("weight_bytes", sa.BigInteger()),
    ("kv_bytes_per_token", sa.BigInteger()),
)


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        for name, kind in RUN_COLUMNS:
            batch_op.add_column(sa.Column(name, kind, nullable=True))

    op.create_table(
        "latency_probes",
        sa.Column("probe_id", sa.String(length=32), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=True),
        sa.Column("model", sa.String(length=512), nullable=False),
        sa.Column("model_path", sa.Text(), nullable=False),
        sa.Column("weights_sha256", sa.String(length=64), nullable=False),
        sa.Column("backend", sa.String(length=32), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("probe_settings", sa.JSON(), nullable=False),
        sa.Column("tasks", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hardware", sa.JSON(), nullable=False),
        sa.Column("hardware_profile", sa.String(length=64), nullable=True),
        sa.Column("ignore_eos", sa.Boolean(), nullable=False),
        sa.Column("model_params", sa.BigInteger(), nullable=True),
        sa.Column("weight_bytes", sa.BigInteger(), nullable=True),
        sa.Column("kv_bytes_per_token", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("probe_id"),
    )
    with op.batch_alter_table("latency_probes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_latency_probes_model"), ["model"], unique=False)
        batch_op.create_index(batch_op.f("ix_latency_probes_run_id"), ["run_id"], unique=False)

    op.create_table(
        "probe_levels",
        sa.Column("probe_id", sa.String(length=32), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=True),
        sa.Column("request_rate", sa.Float(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("energy_j", sa.Float(), nullable=True),
        sa.Column("energy_note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["probe_id"], ["latency_probes.probe_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("probe_id", "level"),
    )
    op.create_table(
        "probe_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("probe_id", sa.String(length=32), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(length=256), nullable=False),
        sa.Column("doc_id", sa.Integer(), nullable=False),
        sa.Column("start_s", sa.Float(), nullable=False),
        sa.Column("e2e_s", sa.Float(), nullable=False),
        sa.Column("ttft_s", sa.Float(), nullable=True),
        sa.Column("chunk_times", sa.JSON(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("tokens_counted_by", sa.String(length=16), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["probe_id"], ["latency_probes.probe_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("probe_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_probe_requests_probe_id"), ["probe_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("probe_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_probe_requests_probe_id"))
    op.drop_table("probe_requests")
    op.drop_table("probe_levels")
    with op.batch_alter_table("latency_probes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_latency_probes_run_id"))
        batch_op.drop_index(batch_op.f("ix_latency_probes_model"))
    op.drop_table("latency_probes")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        for name, _ in reversed(RUN_COLUMNS):
            batch_op.drop_column(name)
