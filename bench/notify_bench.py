"""Notification benchmark: the cost notify() adds to the transaction that causes an event, how
fast the outbox is sent per channel to local receivers, and what an escalation pass costs.

Starts its own PostgreSQL on a free loopback port in a temp dir, a local HTTP server playing a
generic webhook and a WeCom robot, and a local SMTP server (aiosmtpd). It is not a test.

    .venv/bin/python bench/notify_bench.py [--tickets 500]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiosmtpd.controller import Controller  # noqa: E402

from caretaker.migrations import migrate  # noqa: E402
from caretaker.servers import LocalPostgres, free_port  # noqa: E402
from caretaker.settings import Settings  # noqa: E402
from tickets import outbox  # noqa: E402
from tickets.escalation import escalate_due  # noqa: E402
from tickets.notification_policy import parse_spec, save_spec  # noqa: E402
from tickets.notify import notify  # noqa: E402

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


class Robot(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers["Content-Length"]))
        data = json.dumps({"errcode": 0, "errmsg": "ok"}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


class Sink:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        return "250 OK"


def setup(conn: psycopg.Connection[Any], n: int, http: str, smtp_port: int) -> None:
    conn.execute("INSERT INTO sites (id, name, timezone)"
                 " VALUES ('rv', '河畔花园', 'Asia/Shanghai')")
    conn.execute("INSERT INTO device_types (id, name) VALUES ('water_pump', 'pump')")
    conn.execute("INSERT INTO devices (site_id, id, type_id, name)"
                 " SELECT 'rv', 'pump-' || i, 'water_pump', i || '号水泵'"
                 " FROM generate_series(1, %s) i", (n,))
    save_spec(conn, "rv", parse_spec({"receivers": [
        {"name": "hook", "channel": "webhook", "url": f"{http}/hook"},
        {"name": "robot", "channel": "wecom", "url": f"{http}/send?key=k"},
        {"name": "mail", "channel": "email", "to": ["duty@riverside.example"],
         "port": smtp_port, "audiences": ["engineer_on_duty"]},
    ]}), now=T0)
    conn.commit()


def measure(url: str, n: int, settings: Settings) -> None:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        rows = conn.execute(
            "INSERT INTO work_orders (site_id, device_id, source, severity, priority, title,"
            " description, opened_at, respond_by, resolve_by, updated_at)"
            " SELECT 'rv', 'pump-' || i, 'inspection', 'critical', 1, '水泵振动超限', '振动 11.5',"
            " %s, %s, %s, %s FROM generate_series(1, %s) i RETURNING *",
            (T0, T0 + timedelta(minutes=15), T0 + timedelta(hours=4), T0, n)).fetchall()
        conn.commit()
        started = time.perf_counter()
        for row in rows:
            notify(conn, site_id="rv", subject="work_order", event="opened", record=dict(row),
                   now=T0)
        conn.commit()
        per = (time.perf_counter() - started) / n * 1000
        print(f"  notify(opened), 2 receivers each: {per:.2f} ms per event "
              f"({n} events, one transaction)")
        for label, when in (("first pass: overdue + level 1 for each", 16),
                            ("steady pass: nothing new", 17)):
            started = time.perf_counter()
            with conn.transaction():
                taken = escalate_due(conn, T0 + timedelta(minutes=when))
            print(f"  escalate_due, {n} live overdue tickets, {label}: "
                  f"{(time.perf_counter() - started) * 1000:.0f} ms, {len(taken)} steps")
        counts = conn.execute("SELECT channel, count(*) AS n FROM notification_outbox"
                              " GROUP BY channel ORDER BY channel").fetchall()
        for c in counts:
            started = time.perf_counter()
            sent = 0
            conn.execute("UPDATE notification_outbox SET next_attempt = %s"
                         " WHERE channel <> %s AND delivered_at IS NULL",
                         (T0 + timedelta(days=1), c["channel"]))
            conn.commit()
            while True:
                with conn.transaction():
                    got = outbox.deliver_due(conn, T0 + timedelta(hours=1), limit=50,
                                             settings=settings)
                if not got:
                    break
                sent += got
            elapsed = time.perf_counter() - started
            print(f"  deliver {c['channel']:<8} {sent}/{c['n']} sent: {sent / elapsed:.0f}/s")
            conn.execute("UPDATE notification_outbox SET next_attempt = %s"
                         " WHERE delivered_at IS NULL", (T0,))
            conn.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=500)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="caretaker-nbench-"))
    os.chmod(state, 0o755)
    pg = LocalPostgres(state, free_port())
    http = ThreadingHTTPServer(("127.0.0.1", 0), Robot)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    smtp = Controller(Sink(), hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        pg.start()
        with psycopg.connect(pg.url) as conn:
            migrate(conn)
        with psycopg.connect(pg.url, row_factory=dict_row) as conn:
            setup(conn, args.tickets, f"http://127.0.0.1:{http.server_address[1]}", smtp.port)
        print(f"notifications, {args.tickets} tickets, {os.cpu_count()} CPUs")
        measure(pg.url, args.tickets, Settings(database_url=pg.url))
    finally:
        smtp.stop()
        http.shutdown()
        pg.stop(mode="immediate")
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
