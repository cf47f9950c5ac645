"""Datasets and their datapoints (v4 ``/datasets``, ``/datapoints``).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ID = sa.String(40)
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("org_id", _ID, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("project_id", _ID, sa.ForeignKey("projects.id"), nullable=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.String(255), nullable=False),
        sa.Column("datapoint_count", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_index("ix_datasets_org_created", "datasets", ["org_id", "created_at", "id"])
    op.create_index("ix_datasets_project", "datasets", ["project_id"])
    op.create_table(
        "datapoints",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("org_id", _ID, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("dataset_id", _ID, sa.ForeignKey("datasets.id"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("inputs", sa.Text, nullable=True),
        sa.Column("messages", sa.Text, nullable=True),
        sa.Column("target", sa.Text, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        # Also the index of the dataset's paged list (dataset_id, then its order).
        sa.UniqueConstraint("dataset_id", "version", "position", name="uq_datapoints_dataset_order"),
    )


def downgrade() -> None:
    op.drop_table("datapoints")
    op.drop_index("ix_datasets_project", table_name="datasets")
    op.drop_index("ix_datasets_org_created", table_name="datasets")
    op.drop_table("datasets")
