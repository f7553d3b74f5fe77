"""Moving a tenant's store to another isolation mode or backend (shared ↔ schema ↔ database,
SQLite ↔ PostgreSQL), built on the portable backup and the restore's way of building a new store
beside the old one: requests.py (what a tenant may move to, and asking), steps.py (the `move`
job), kept.py (the store a tenant left, kept for a while and then dropped), recorded.py (the use
cases, on the trail)."""
