"""Grafana's file-provisioning layout for Caretaker: the datasource (connecting as the reader
role, its password an environment reference Grafana expands, never the password itself), the
dashboards provider, and the dashboards' JSON; byte-identical for the same inputs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from caretaker.errors import Invalid
from dashboards.boards import build_all
from dashboards.reader import READER
from dashboards.sqlquery import DATASOURCE_UID, PLUGIN

PASSWORD_ENV = "CARETAKER_GRAFANA_DB_PASSWORD"  # Caretaker's setting and Grafana's reference
FOLDER_UID = "caretaker"
FOLDER = "Caretaker"
MIN_INTERVAL = "1m"  # $__interval never below this: devices report every 10 s .. 1 min
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Target:
    """Where Grafana reaches the database: host, port and database name."""

    host: str
    port: int
    database: str

    @classmethod
    def parse(cls, text: str) -> Target:
        """"host:port/dbname" or a postgresql:// URL (its login is ignored)."""
        url = urlsplit(text if "://" in text else f"postgresql://{text}")
        database = url.path.lstrip("/")
        if not url.hostname or not database:
            raise Invalid(f"{text!r}: give the database as host:port/dbname")
        return cls(url.hostname, url.port or 5432, database)

    @property
    def sslmode(self) -> str:
        return "disable" if self.host in LOOPBACK else "require"


def datasource(target: Target, password: str | None = None) -> dict[str, Any]:
    """The datasource definition; with `password` for the HTTP API, else the env reference."""
    return {
        "name": "Caretaker TimescaleDB", "type": PLUGIN, "uid": DATASOURCE_UID,
        "access": "proxy", "url": f"{target.host}:{target.port}", "user": READER,
        "isDefault": False, "editable": False,
        "jsonData": {"database": target.database, "sslmode": target.sslmode,
                     "postgresVersion": 1500, "timescaledb": True,
                     "timeInterval": MIN_INTERVAL, "maxOpenConns": 10},
        "secureJsonData": {"password": password if password is not None
                           else f"${PASSWORD_ENV}"},
    }


def datasource_yaml(target: Target) -> str:
    """provisioning/datasources/caretaker.yaml."""
    doc = {"apiVersion": 1, "datasources": [datasource(target)]}
    return ("# Caretaker's TimescaleDB, read as the read-only role; Grafana reads the password\n"
            f"# from the environment variable {PASSWORD_ENV} when it starts.\n"
            + yaml.safe_dump(doc, sort_keys=True, allow_unicode=True))


def dashboards_yaml(path: str) -> str:
    """provisioning/dashboards/caretaker.yaml: load the JSON files under `path`."""
    doc = {"apiVersion": 1, "providers": [{
        "name": "caretaker", "orgId": 1, "folder": FOLDER, "folderUid": FOLDER_UID,
        "type": "file", "disableDeletion": False, "allowUiUpdates": False,
        "updateIntervalSeconds": 60,
        "options": {"path": path, "foldersFromFilesStructure": False}}]}
    return yaml.safe_dump(doc, sort_keys=True, allow_unicode=True)


def dashboard_json() -> dict[str, str]:
    """Every dashboard as Grafana JSON text, by file name."""
    encoder = JSONEncoder(sort_keys=True, indent=2, ensure_ascii=False)
    return {f"{name}.json": encoder.encode(board) + "\n" for name, board in build_all().items()}


def dashboards_for_api() -> list[dict[str, Any]]:
    """Every dashboard as the HTTP API takes it (parsed JSON)."""
    return [json.loads(text) for text in dashboard_json().values()]


def export(directory: Path, target: Target, *, dashboards_path: str | None = None
           ) -> list[Path]:
    """Write the provisioning files and dashboards under `directory`; the files written.

    `dashboards_path` is where Grafana will find DIR/dashboards (default: its absolute path
    here, for a Grafana on this machine)."""
    boards = directory / "dashboards"
    files = {
        directory / "provisioning" / "datasources" / "caretaker.yaml": datasource_yaml(target),
        directory / "provisioning" / "dashboards" / "caretaker.yaml": dashboards_yaml(
            dashboards_path or str(boards.resolve())),
        **{boards / name: text for name, text in dashboard_json().items()},
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(files)
