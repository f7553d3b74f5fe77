"""The tenant's side: the tables of one Tenantry tenant's store, mirrored as Django models from its
schema snapshot (the JSON file PEER_SCHEMA names), so that each django-tenants tenant gets the
same tables, columns, keys, foreign keys, unique constraints and indexes. Its CHECK constraints
are left out (Django writes them from Python expressions, not SQL): the peer does a little less."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from django.db import models

_ON_DELETE = {"CASCADE": models.CASCADE, "SET NULL": models.SET_NULL, "RESTRICT": models.RESTRICT}
_SIZED = re.compile(r"(VARCHAR|CHAR)\((\d+)\)")
_DECIMAL = re.compile(r"NUMERIC\((\d+), (\d+)\)")
_PLAIN: dict[str, type[models.Field[Any, Any]]] = {
    "TEXT": models.TextField,
    "INTEGER": models.IntegerField,
    "BIGINT": models.BigIntegerField,
    "BOOLEAN": models.BooleanField,
    "DATE": models.DateField,
    "TIMESTAMP": models.DateTimeField,
    "DOUBLE PRECISION": models.FloatField,
    "JSON": models.JSONField,
    "JSONB": models.JSONField,
}


def _field(column: dict[str, Any], *, primary_key: bool) -> models.Field[Any, Any]:
    options: dict[str, Any] = {"db_column": column["name"], "null": column["nullable"]}
    if primary_key:
        options = {"db_column": column["name"], "primary_key": True}
    kind = column["type"]
    if primary_key and column.get("default") == "autoincrement":
        return models.AutoField(**options)
    if sized := _SIZED.fullmatch(kind):
        return models.CharField(max_length=int(sized[2]), **options)
    if decimal := _DECIMAL.fullmatch(kind):
        return models.DecimalField(max_digits=int(decimal[1]), decimal_places=int(decimal[2]), **options)
    return _PLAIN.get(kind, models.TextField)(**options)


def _model(number: int, table: str, described: dict[str, Any], names: dict[str, str]) -> None:
    keys = described["primary_key"]
    foreign = {fk["columns"][0]: fk for fk in described["foreign_keys"] if len(fk["columns"]) == 1}
    fields: dict[str, Any] = {"__module__": __name__}
    field_of: dict[str, str] = {}  # column: the model's field for it
    for column in described["columns"]:
        name = column["name"]
        if fk := foreign.get(name):
            field_of[name] = f"{name}_ref"
            fields[field_of[name]] = models.ForeignKey(
                "self" if fk["references"] == table else names[fk["references"]],
                on_delete=_ON_DELETE.get(fk["on_delete"] or "", models.DO_NOTHING),
                db_column=name,
                to_field=fk["referred_columns"][0],
                null=column["nullable"],
                db_index=False,  # the table's own indexes follow
                related_name="+",
            )
        else:
            field_of[name] = name
            fields[name] = _field(column, primary_key=keys == [name])
    if len(keys) > 1:
        fields["pk"] = models.CompositePrimaryKey(*(field_of[key] for key in keys))
    constraints: list[Any] = [
        models.UniqueConstraint(fields=[field_of[column] for column in columns], name=f"u{number}_{place}")
        for place, (_, columns) in enumerate(described["unique"])
    ]
    indexes = []
    named_unique = {name for name, _ in described["unique"]}
    for place, index in enumerate(described["indexes"]):
        columns = [field_of[column] for column in index["columns"]]
        if index["name"] in named_unique:
            continue  # the unique constraint's own index
        if index["unique"]:
            constraints.append(models.UniqueConstraint(fields=columns, name=f"ui{number}_{place}"))
        else:
            indexes.append(models.Index(fields=columns, name=f"i{number}_{place}"))
    fields["Meta"] = type("Meta", (), {"db_table": table, "constraints": constraints, "indexes": indexes})
    globals()[names[table]] = type(names[table], (models.Model,), fields)


def _mirror(tables: dict[str, Any]) -> None:
    names = {table: f"Table{number}" for number, table in enumerate(tables)}
    for number, (table, described) in enumerate(tables.items()):
        _model(number, table, described, names)


_mirror(json.loads(Path(os.environ["PEER_SCHEMA"]).read_text())["tables"])
