"""A tenant's people (people.py: invite, roles, deactivate, the plan's limit) and its unit tree
(units.py)."""
