"""`caretaker report weekly`: writes the report; clear messages for an unknown site or no
database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg

from caretaker.servers import free_port
from tests.reports.helpers import load_example, pdf_text
from tests.reports.test_weekly_store import DUE

ROOT = Path(__file__).resolve().parents[2]


def caretaker(database: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CARETAKER_DATABASE_URL": database, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "stack.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=240)


def test_report_weekly_pdf_and_html(conn: psycopg.Connection[Any], database: str,
                                    tmp_path: Path) -> None:
    load_example(conn, DUE)
    pdf = tmp_path / "r.pdf"
    done = caretaker(database, "report", "weekly", "--site", "riverside", "--week", "2026-W47",
                     "--lang", "zh-CN", "--format", "pdf", "-o", str(pdf))
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout
    text = pdf_text(pdf.read_bytes())
    assert "巡检周报" in text and "零修急修及时率" in text and "2026-W47" in text
    html = tmp_path / "r.html"
    done = caretaker(database, "report", "weekly", "--site", "riverside", "--week", "2026-W47",
                     "--lang", "en", "--format", "html", "-o", str(html))
    assert done.returncode == 0, done.stderr
    assert "Weekly inspection report" in html.read_text()


def test_clear_messages(conn: psycopg.Connection[Any], database: str) -> None:
    load_example(conn, DUE)
    unknown = caretaker(database, "report", "weekly", "--site", "nowhere")
    assert unknown.returncode == 1
    assert "unknown site 'nowhere'" in unknown.stderr and "caretaker load" in unknown.stderr
    bad = caretaker(database, "report", "weekly", "--site", "riverside", "--week", "2026-48")
    assert bad.returncode == 1 and "ISO week" in bad.stderr
    down = caretaker(f"postgresql://caretaker@127.0.0.1:{free_port()}/caretaker",
                     "report", "weekly", "--site", "riverside")
    assert down.returncode == 1
    assert "cannot reach the database" in down.stderr and "caretaker up" in down.stderr
