"""Alembic environment of the landlord database. Run through services.layers.landlord, which
hands over an open connection; there is no alembic.ini."""

from alembic import context

from services.models import LandlordBase

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=LandlordBase.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
