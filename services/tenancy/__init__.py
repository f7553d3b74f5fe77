"""Tenants, their domains and (with the scope) the one place tenant isolation is enforced."""
