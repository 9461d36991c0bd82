"""Residents' personal data (name, phone): shown whole to the roles that handle a ticket,
masked for everyone else and in exports."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# Roles that handle tickets and complaints and so may see whom to call back.
HANDLERS = frozenset({"admin", "supervisor", "engineer", "frontdesk"})


def mask_phone(phone: str | None) -> str | None:
    """138****5678: the first three and last four digits kept, the middle hidden."""
    if not phone:
        return phone
    if len(phone) <= 7:
        return phone[:1] + "*" * (len(phone) - 1)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


def mask_name(name: str | None) -> str | None:
    """张** / J*** : the first character kept."""
    if not name:
        return name
    return name[:1] + "*" * max(len(name) - 1, 1)


def may_see_personal(role: str) -> bool:
    """Whether this role sees residents' names and phones unmasked."""
    return role in HANDLERS


def masked(row: Mapping[str, Any], *, names: Iterable[str] = (),
           phones: Iterable[str] = ()) -> dict[str, Any]:
    """A copy of `row` with the given name and phone fields masked."""
    out = dict(row)
    for key in names:
        if key in out:
            out[key] = mask_name(out[key])
    for key in phones:
        if key in out:
            out[key] = mask_phone(out[key])
    return out
