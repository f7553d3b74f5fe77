"""Documents: a tree of folders, the documents filed in them, and each document's uploaded
versions (the bytes live in file storage; a version records where, how big and its SHA-256).

Revision ID: documents_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "documents_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "folders",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "parent_id",
            sa.Integer,
            sa.ForeignKey("folders.id", name="fk_folders_parent", ondelete="RESTRICT"),
        ),
        sa.Column("name", sa.String(200), nullable=False),
        # Materialised path of ids ("/1/4/9/"), as for units: a subtree is one indexed prefix match.
        sa.Column("path", sa.String(1000), nullable=False),
        sa.Column(
            "unit_id", sa.Integer, sa.ForeignKey("units.id", name="fk_folders_unit", ondelete="SET NULL")
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.UniqueConstraint("parent_id", "name", name="uq_folders_parent_name"),
    )
    op.create_index("ix_folders_path", "folders", ["path"])
    op.create_index("ix_folders_unit_id", "folders", ["unit_id"])
    op.create_table(
        "documents",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "folder_id",
            sa.Integer,
            sa.ForeignKey("folders.id", name="fk_documents_folder", ondelete="RESTRICT"),
        ),
        sa.Column(
            "owner_id", sa.Integer, sa.ForeignKey("users.id", name="fk_documents_owner", ondelete="SET NULL")
        ),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("is_archived", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column(
            "unit_id", sa.Integer, sa.ForeignKey("units.id", name="fk_documents_unit", ondelete="SET NULL")
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.UniqueConstraint("folder_id", "title", name="uq_documents_folder_title"),
    )
    op.create_index("ix_documents_owner_id", "documents", ["owner_id"])
    op.create_index("ix_documents_unit_id", "documents", ["unit_id"])
    op.create_table(
        "document_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "document_id",
            sa.Integer,
            sa.ForeignKey("documents.id", name="fk_document_versions_document", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.CHAR(64), nullable=False),
        sa.Column("storage_key", sa.String(500), nullable=False),
        sa.Column(
            "uploaded_by_id",
            sa.Integer,
            sa.ForeignKey("users.id", name="fk_document_versions_uploaded_by", ondelete="SET NULL"),
        ),
        sa.Column(
            "unit_id",
            sa.Integer,
            sa.ForeignKey("units.id", name="fk_document_versions_unit", ondelete="SET NULL"),
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.UniqueConstraint("document_id", "version", name="uq_document_versions_document_version"),
        sa.UniqueConstraint("storage_key", name="uq_document_versions_storage_key"),
        sa.CheckConstraint("version >= 1", name="ck_document_versions_version"),
        sa.CheckConstraint("size_bytes >= 0", name="ck_document_versions_size"),
    )
    op.create_index("ix_document_versions_uploaded_by_id", "document_versions", ["uploaded_by_id"])
    op.create_index("ix_document_versions_unit_id", "document_versions", ["unit_id"])


def downgrade() -> None:
    op.drop_index("ix_document_versions_unit_id", table_name="document_versions")
    op.drop_index("ix_document_versions_uploaded_by_id", table_name="document_versions")
    op.drop_table("document_versions")
    op.drop_index("ix_documents_unit_id", table_name="documents")
    op.drop_index("ix_documents_owner_id", table_name="documents")
    op.drop_table("documents")
    op.drop_index("ix_folders_unit_id", table_name="folders")
    op.drop_index("ix_folders_path", table_name="folders")
    op.drop_table("folders")
