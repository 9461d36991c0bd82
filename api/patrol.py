"""What the patrol routers share: a guard token's own guard."""

from __future__ import annotations

from api.errors import ApiError
from caretaker.tokens import Principal


def own_guard(principal: Principal) -> str | None:
    """The guard a guard token may see (its own); None for every other role."""
    if principal.role != "guard":
        return None
    if principal.guard_id is None:
        raise ApiError(403, "this guard token names no guard", code="forbidden")
    return principal.guard_id
