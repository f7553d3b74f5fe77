"""A tenant's modules: what it may enable or disable and the jobs that do it (requests.py), and
those jobs' steps (steps.py: lock, safety backup, migrate, record, snapshot). Importing steps.py
registers the job kinds."""
