"""The composition root: what puts services, workers and the web app together into a running
installation (the `tenantry` command line). Nothing in services, workers or web imports it."""
