"""Domain errors: things a user can act on. The web layer maps each kind to a page or a 4xx."""

from __future__ import annotations


class DomainError(Exception):
    """Base of errors whose message is safe and useful to show to the user."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(DomainError):
    """The input breaks a rule; `field` names the offending input when there is one."""


class NotFound(DomainError):
    """The thing does not exist, or is not visible from the caller's scope (the two look the same)."""


class Conflict(DomainError):
    """The input is valid but clashes with what exists (a taken email, a slug in use)."""
