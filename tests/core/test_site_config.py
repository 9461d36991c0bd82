"""Site configuration files: validated with clear messages, applied idempotently."""

from __future__ import annotations

import copy
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from caretaker import site_config
from caretaker.site_config import SiteConfigError, example_document, parse
from stack.app import SECTIONS, load_site

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
REGISTRY = ("sites", "zones", "device_types", "devices", "guards", "checkpoints")


def counts(conn: psycopg.Connection) -> dict[str, int]:
    return {t: conn.execute(f"SELECT count(*) AS n FROM {t}").fetchone()["n"]  # noqa: S608
            for t in REGISTRY}


def all_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Rows in every table of the schema, whoever's loader writes it."""
    tables = [r["table_name"] for r in conn.execute(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'").fetchall()]
    return {t: conn.execute(sql.SQL("SELECT count(*) AS n FROM {}").format(sql.Identifier(t))
                            ).fetchone()["n"] for t in tables}


def snapshot(conn: psycopg.Connection) -> dict[str, list[dict[str, Any]]]:
    return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()  # noqa: S608
            for t in REGISTRY}


def registry_only(doc: dict[str, Any]) -> dict[str, Any]:
    """The example's registry sections (further sections belong to other loaders' tests)."""
    return {k: v for k, v in doc.items() if k in site_config.REGISTRY_SECTIONS}


def test_example_site_loads_twice_without_duplicates(conn: psycopg.Connection) -> None:
    doc = example_document()  # with every section it has, through every loader
    first = load_site(conn, doc, now=NOW)
    conn.commit()
    after_first = snapshot(conn)
    assert counts(conn) == {"sites": 1, "zones": 10, "device_types": 9, "devices": 21,
                            "guards": 4, "checkpoints": 17}
    assert first.counts["devices"]["inserted"] == 21

    every_table = all_counts(conn)
    second = load_site(conn, doc, now=datetime(2026, 11, 24, tzinfo=UTC))
    conn.commit()
    assert all_counts(conn) == every_table  # rules, routes, ... of other loaders too
    assert second.changed == 0
    assert second.counts["checkpoints"] == {"inserted": 0, "updated": 0, "unchanged": 17}
    assert snapshot(conn) == after_first  # not even updated_at moved


def test_example_document_with_all_its_sections_is_valid() -> None:
    config = parse(example_document(), SECTIONS)
    assert config.site.timezone == "Asia/Shanghai"
    assert set(config.extra_sections) <= set(SECTIONS)


def test_changed_file_updates_only_what_changed(conn: psycopg.Connection) -> None:
    doc = registry_only(example_document())
    load_site(conn, doc, now=NOW)
    changed = copy.deepcopy(doc)
    changed["devices"][0]["name"] = "Booster pump 1 (rebuilt)"
    changed["guards"].append({"id": "g-zhao", "name": "Zhao Lei"})
    later = datetime(2026, 11, 25, tzinfo=UTC)
    result = load_site(conn, changed, now=later)
    assert result.counts["devices"] == {"inserted": 0, "updated": 1, "unchanged": 20}
    assert result.counts["guards"] == {"inserted": 1, "updated": 0, "unchanged": 4}
    row = conn.execute("SELECT name, updated_at, created_at FROM devices"
                       " WHERE site_id = 'riverside' AND id = 'pump-1'").fetchone()
    assert row["name"] == "Booster pump 1 (rebuilt)"
    assert row["updated_at"] == later and row["created_at"] == NOW


def test_auto_registered_device_and_site_are_adopted(conn: psycopg.Connection) -> None:
    conn.execute("INSERT INTO sites (id, name, auto_registered) VALUES ('riverside', 'riverside',"
                 " true)")
    conn.execute("INSERT INTO devices (site_id, id, name, status) VALUES ('riverside', 'pump-1',"
                 " 'pump-1', 'unassigned')")
    load_site(conn, registry_only(example_document()), now=NOW)
    site = conn.execute("SELECT auto_registered FROM sites").fetchone()
    device = conn.execute("SELECT status, type_id FROM devices WHERE id = 'pump-1'").fetchone()
    assert site["auto_registered"] is False
    assert device == {"status": "active", "type_id": "water_pump"}


@pytest.mark.parametrize(("doc", "expected"), [
    ({"zones": []}, "site: Field required"),
    ({"site": {"id": "s 1", "name": "x"}}, "site.id: String should match pattern"),
    ({"site": {"id": "s1", "name": "x", "timezone": "Asia/Shangai"}},
     "site.timezone: unknown time zone 'Asia/Shangai'"),
    ({"site": {"id": "s1", "name": "x"}, "devices": [{"id": "d1", "name": "d", "zone": "z"},
                                                     {"id": "d2", "nme": "d"}]},
     "devices[1].nme: Extra inputs are not permitted"),
    ({"site": {"id": "s1", "name": "x"},
      "checkpoints": [{"id": "c1", "name": "c", "tag": "T"},
                      {"id": "c2", "name": "c", "tag": "T"}]},
     "checkpoints[1].tag: 'T' is used by two checkpoints"),
    ({"site": {"id": "s1", "name": "x"},
      "zones": [{"id": "z", "name": "a"}, {"id": "z", "name": "b"}]},
     "zones[1].id: 'z' appears twice"),
    ({"site": {"id": "s1", "name": "x"}, "gates": []}, "unknown section(s) 'gates'"),
    ([1, 2], "must be a mapping"),
])
def test_invalid_documents_name_the_bad_field(doc: Any, expected: str) -> None:
    with pytest.raises(SiteConfigError) as err:
        parse(doc, SECTIONS)
    assert expected in str(err.value)


def test_unknown_references_are_named_and_nothing_is_written(conn: psycopg.Connection) -> None:
    doc = {"site": {"id": "s1", "name": "x"},
           "zones": [{"id": "z1", "name": "zone"}],
           "devices": [{"id": "d1", "name": "d", "zone": "z1", "type": "no_such_type"}],
           "checkpoints": [{"id": "c1", "name": "c", "tag": "T1", "device": "d9"}]}
    with pytest.raises(SiteConfigError) as err:
        load_site(conn, doc, now=NOW)
    message = str(err.value)
    assert "devices[0].type: unknown type 'no_such_type'" in message
    assert "checkpoints[0].device: unknown device 'd9'" in message
    conn.rollback()
    assert counts(conn)["sites"] == 0


def test_references_to_records_already_in_the_site_are_accepted(conn: psycopg.Connection) -> None:
    load_site(conn, {"site": {"id": "s1", "name": "x"}, "zones": [{"id": "z1", "name": "z"}],
                            "device_types": [{"id": "pump", "name": "Pump"}]}, now=NOW)
    load_site(conn, {"site": {"id": "s1", "name": "x"},
                            "devices": [{"id": "d1", "name": "d", "zone": "z1", "type": "pump"}]},
                     now=NOW)
    assert counts(conn)["devices"] == 1


def test_further_sections_go_to_their_loaders_after_the_registry(conn: psycopg.Connection
                                                                 ) -> None:
    calls: list[tuple[str, Any, datetime]] = []

    def load(conn: psycopg.Connection, site_id: str, items: Any, *, now: datetime) -> None:
        calls.append((site_id, items, now))
        # the registry is applied first: the site exists when further sections load
        assert conn.execute("SELECT count(*) FROM sites").fetchone()

    doc = {"routes": [{"id": "r1"}], "site": {"id": "s1", "name": "x"}, "rules": [{"id": "x"}]}
    section = site_config.Section(list[dict[str, str]], load)
    result = site_config.load_site_config(conn, doc, now=NOW,
                                          sections={"rules": section, "routes": section})
    assert [c[1] for c in calls] == [[{"id": "x"}], [{"id": "r1"}]]
    assert calls[0][0] == "s1" and calls[0][2] == NOW
    assert result.sections == ["rules", "routes"]


def test_a_section_without_a_loader_is_refused(conn: psycopg.Connection) -> None:
    with pytest.raises(SiteConfigError, match="unknown section"):
        site_config.load_site_config(conn, {"site": {"id": "s1", "name": "x"}, "rules": []},
                                     now=NOW, sections={})


def test_cli_load_file_and_error(settings_env: dict[str, str], tmp_path: Path) -> None:
    good = tmp_path / "site.yaml"
    good.write_text("site: {id: s1, name: Site One, timezone: Europe/Paris}\n"
                    "zones: [{id: lobby, name: Lobby}]\n")
    cmd = [sys.executable, "-m", "stack.cli", "load", str(good)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "zones         1 new" in out.stdout
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert "zones         0 new, 0 updated, 1 unchanged" in again.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text("site: {id: s1, name: Site One}\ndevices: [{id: d1}]\n")
    out = subprocess.run([sys.executable, "-m", "stack.cli", "load", str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "devices[0].name: Field required" in out.stderr
    assert "Traceback" not in out.stderr
