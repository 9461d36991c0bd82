"""Fixtures of the patrol tests (defined in helpers.py)."""

from tests.patrol.helpers import load  # noqa: F401
