"""The errors the domain raises on purpose, by kind; the API maps each kind to a status once.

Domain code never carries HTTP status codes: it raises `Invalid`, `NotFound`, `Conflict` or
`Forbidden` (or a subclass naming its field of work), and `api/errors.py` turns the kind into
a response with the one error shape.
"""

from __future__ import annotations

from typing import Any


class CaretakerError(Exception):
    """Base of every error raised on purpose; `message` is for people, `details` for machines."""

    code = "error"

    def __init__(self, message: object = "", *args: object, details: Any = None) -> None:
        super().__init__(message, *args)
        self.message = str(message)
        self.details = details


class Invalid(CaretakerError, ValueError):
    """Input that cannot be used: a bad field, value or combination."""

    code = "invalid"


class NotFound(CaretakerError, LookupError):
    """A record that does not exist (or that the caller may not know exists)."""

    code = "not_found"


class Conflict(CaretakerError):
    """A request the record's current state does not allow (a transition, a duplicate)."""

    code = "conflict"


class Forbidden(CaretakerError):
    """An action the caller's role or scope does not allow."""

    code = "forbidden"
