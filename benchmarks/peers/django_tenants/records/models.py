"""The tenant's side: PEER_TABLES tables, each with a name, notes, an amount, a timestamp (indexed)
and a foreign key to the table before it, so that each tenant's schema holds as many tables,
indexes and constraints as the Tenantry tenants it is compared with."""

import os

from django.db import models

previous: type[models.Model] | None = None
for number in range(int(os.environ.get("PEER_TABLES", "25"))):
    fields: dict[str, object] = {
        "__module__": __name__,
        "name": models.CharField(max_length=200),
        "notes": models.TextField(blank=True),
        "amount": models.DecimalField(max_digits=12, decimal_places=2, null=True),
        "created_at": models.DateTimeField(auto_now_add=True, db_index=True),
    }
    if previous is not None:
        fields["parent"] = models.ForeignKey(previous, on_delete=models.CASCADE, null=True)
    previous = type(f"Record{number}", (models.Model,), fields)
    globals()[previous.__name__] = previous
