"""People who sign in: users, their roles, passwords and API tokens."""
