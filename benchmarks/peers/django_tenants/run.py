"""Run with the peer's own Python (benchmarks/peers.py builds it): make the migrations, migrate the
public schema, then create `--tenants` tenants the way django-tenants' documentation does
(`Client(...).save()` creates the schema and migrates it; then its domain), timing each from the
call to its return. Writes {"seconds": [...], "tables": N} to `--result`."""

import argparse
import io
import json
import os
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, required=True)
    parser.add_argument("--scratch", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args()
    for app in ("customers", "records"):
        (args.scratch / "peer_migrations" / app).mkdir(parents=True, exist_ok=True)
        (args.scratch / "peer_migrations" / app / "__init__.py").touch()
    (args.scratch / "peer_migrations" / "__init__.py").touch()
    sys.path[:0] = [str(Path(__file__).parent), str(args.scratch)]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")

    import django
    from django.core.management import call_command
    from django.db import connection

    django.setup()
    from customers.models import Client, Domain

    quiet = io.StringIO()
    with redirect_stdout(quiet):
        call_command("makemigrations", "customers", "records", verbosity=0)
        call_command("migrate_schemas", shared=True, verbosity=0)
        Client(schema_name="public", name="public").save(verbosity=0)
    seconds = []
    for number in range(args.tenants):
        started = time.perf_counter()
        with redirect_stdout(quiet):
            tenant = Client(schema_name=f"peer{number}", name=f"Peer {number}")
            tenant.save(verbosity=0)
            Domain(domain=f"peer{number}.localhost", tenant=tenant, is_primary=True).save()
        seconds.append(time.perf_counter() - started)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'peer0'")
        (tables,) = cursor.fetchone()
    args.result.write_text(json.dumps({"seconds": seconds, "tables": tables}))


if __name__ == "__main__":
    main()
