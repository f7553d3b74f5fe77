"""Domain errors: things a user can act on. The web layer maps each kind to a page or a 4xx."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class DomainError(Exception):
    """Base of errors whose message is safe and useful to show to the user."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def errors_by_field(self, default_field: str) -> dict[str, str]:
        """What is wrong, by the form field it belongs to (`default_field` when it names none)."""
        return {self.field or default_field: self.message}


class InvalidSetting(DomainError, ValueError):
    """A TENANTRY_* variable the installation cannot start with; the message names it."""


class InvalidInput(DomainError):
    """The input breaks a rule; `field` names the offending input when there is one."""


class NotFound(DomainError):
    """The thing does not exist, or is not visible from the caller's scope (the two look the same)."""


class Conflict(DomainError):
    """The input is valid but clashes with what exists (a taken email, a slug in use)."""


class InvalidFields(InvalidInput):
    """Several inputs are wrong at once; `errors` maps each field to what is wrong with it."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(" ".join(errors.values()), field=next(iter(errors)))
        self.errors = errors

    def errors_by_field(self, default_field: str) -> dict[str, str]:
        return self.errors


class FieldErrors:
    """Collects the errors of independent checks, so a form shows every mistake at once."""

    def __init__(self) -> None:
        self.errors: dict[str, str] = {}

    @contextmanager
    def checking(self, field: str) -> Iterator[None]:
        try:
            yield
        except InvalidFields as errors:
            for name, message in errors.errors.items():
                self.errors.setdefault(name, message)
        except DomainError as error:
            self.errors.setdefault(error.field or field, error.message)

    def raise_if_any(self) -> None:
        if self.errors:
            raise InvalidFields(self.errors)
