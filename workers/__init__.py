"""Dramatiq: the broker, the actors (thin: they take ids and call services) and the embedded worker."""
