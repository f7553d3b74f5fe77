"""A tenant's life after provisioning, as the platform's staff steer it: suspended (closed to its
people, with a reason they read) and resumed; deleted (closed at once, a verified backup taken,
the store dropped after a grace period during which the deletion can be undone)."""
