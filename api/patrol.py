"""What the patrol routers share: a guard token's own guard, and patrol errors as API errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from api.errors import ApiError
from caretaker.tokens import Principal
from rules.patrol.model import PatrolConfigError
from rules.patrol.store import InUse, NotFound


def own_guard(principal: Principal) -> str | None:
    """The guard a guard token may see (its own); None for every other role."""
    if principal.role != "guard":
        return None
    if principal.guard_id is None:
        raise ApiError(403, "this guard token names no guard", code="forbidden")
    return principal.guard_id


@contextmanager
def patrol_errors() -> Iterator[None]:
    """Turn the patrol package's refusals into 404 / 409 / 422 answers."""
    try:
        yield
    except NotFound as exc:
        raise ApiError(404, str(exc.args[0] if exc.args else exc)) from exc
    except InUse as exc:
        raise ApiError(409, str(exc)) from exc
    except PatrolConfigError as exc:
        raise ApiError(422, str(exc), code="invalid") from exc
