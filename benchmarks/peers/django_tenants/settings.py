"""The peer's Django settings: django-tenants (a schema per tenant) on the PostgreSQL database
`PEER_DATABASE_URL` names, with the tenant app `records` in every tenant's schema."""

import os
from urllib.parse import urlsplit

_url = urlsplit(os.environ["PEER_DATABASE_URL"])

SECRET_KEY = "peer-benchmark-only"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": {
        "ENGINE": "django_tenants.postgresql_backend",
        "NAME": _url.path.lstrip("/"),
        "USER": _url.username or "postgres",
        "PASSWORD": _url.password or "",
        "HOST": _url.hostname or "127.0.0.1",
        "PORT": _url.port or 5432,
    }
}
DATABASE_ROUTERS = ("django_tenants.routers.TenantSyncRouter",)
SHARED_APPS = ["django_tenants", "django.contrib.contenttypes", "customers"]
TENANT_APPS = ["records"]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]
TENANT_MODEL = "customers.Client"
TENANT_DOMAIN_MODEL = "customers.Domain"
#: Migrations are made at the start of each run into a scratch folder (records' tables are
#: generated to match the Tenantry tenants they are compared with).
MIGRATION_MODULES = {"customers": "peer_migrations.customers", "records": "peer_migrations.records"}
