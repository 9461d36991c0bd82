"""The one id grammar of sites, devices, guards, checkpoints, rules…: `[A-Za-z0-9_.-]{1,64}`."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import StringConstraints

IDENT_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
IDENT = re.compile(IDENT_PATTERN)

Ident = Annotated[str, StringConstraints(pattern=IDENT_PATTERN)]
"""An id field (pydantic): the same grammar in the site file, the API and MQTT topics."""


def is_ident(value: object) -> bool:
    """True when `value` is a valid id."""
    return isinstance(value, str) and IDENT.fullmatch(value) is not None
