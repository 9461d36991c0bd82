"""Fixture plugins are loaded from pyproject (-p tests.fix_servers)."""
