"""The broker's identity and ACL against the real broker and database: who may connect, as whom,
and publish what; logins from `caretaker mqtt-credentials`, revocation within seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from caretaker.mqtt_credentials import (
    ensure_service_credentials,
    hash_password,
    render_acl,
    sync_broker,
    verify_password,
)
from caretaker.settings import MqttTarget, parse_mqtt_url
from tests.fix_servers import Broker, connack, paho_client, wait_for_login
from tests.ingest.helpers import ingest_settings, prepare_session, running_worker, wait_until

pytestmark = pytest.mark.e2e
SITE = "riverside"


def _count(url: str, sql: str, *args: Any) -> int:
    with psycopg.connect(url) as c:
        row = c.execute(sql, args).fetchone()
    return int(row[0]) if row else 0


@pytest.fixture
def stack(database: str, mqtt: Broker) -> Broker:
    """The broker's logins come from the database, as under `caretaker up`."""
    with psycopg.connect(database) as conn:
        conn.execute("INSERT INTO sites (id, name) VALUES (%s, 'Riverside')", (SITE,))
        conn.commit()
        ensure_service_credentials(conn, mqtt.state_dir)
        sync_broker(conn, mqtt.server)
    wait_for_login(ingest_settings(database, mqtt).mqtt_login("caretaker-ingest-0"))
    return mqtt


def cli(database: str, mqtt: Broker, *args: str) -> subprocess.CompletedProcess[str]:
    """`caretaker ...` against this test's database and embedded-style broker."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARETAKER_")}
    env.update(CARETAKER_DATABASE_URL=database, CARETAKER_STATE_DIR=str(mqtt.state_dir),
               CARETAKER_MQTT_PORT=str(mqtt.port))
    return subprocess.run([sys.executable, "-m", "stack.cli", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def create(database: str, mqtt: Broker, *args: str) -> MqttTarget:
    done = cli(database, mqtt, "mqtt-credentials", "create", "--site", SITE, *args)
    assert done.returncode == 0, done.stderr
    login = json.loads(done.stdout.strip().splitlines()[-1])
    assert login["client_id"] == login["username"]
    assert login["password"] not in done.stderr
    return MqttTarget(login["host"], login["port"], login["username"], login["password"])


def publish_v5(target: MqttTarget, messages: list[tuple[str, bytes]]) -> list[str]:
    """Publish at QoS 1 over MQTT v5; the reason code of each PUBACK."""
    client = paho_client(target)
    reasons: list[str] = []
    done = threading.Event()

    def on_publish(c: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        reasons.append(str(reason))
        if len(reasons) == len(messages):
            done.set()

    client.on_publish = on_publish
    client.connect(target.host, target.port)
    client.loop_start()
    for topic, payload in messages:
        client.publish(topic, payload, qos=1)
    assert done.wait(10), "no PUBACK"
    client.disconnect()
    client.loop_stop()
    return reasons


def test_hash_is_mosquittos_format() -> None:
    hashed = hash_password("secret", salt=b"0123456789ab")
    assert hashed.startswith("$7$101$MDEyMzQ1Njc4OWFi$") and len(hashed.split("$")[4]) == 88
    assert verify_password("secret", hashed) and not verify_password("Secret", hashed)


def test_acl_names_each_login_literally() -> None:
    from caretaker.mqtt_credentials import Credential

    acl = render_acl([Credential("device/s.1/pump.1", "device", "s.1", "pump.1"),
                      Credential("x", "guard", "s", "g", revoked_at=None)])
    assert "user device/s.1/pump.1\ntopic write caretaker/v1/s.1/devices/pump.1/telemetry\n" \
           "topic write caretaker/v1/s.1/devices/pump.1/status\n" in acl
    assert "pattern" not in acl


def test_mqtt_url_with_login_and_tls() -> None:
    t = parse_mqtt_url("mqtts://dev%2F1:p%40ss@broker.example:8884", "/etc/ca.pem")
    assert t == MqttTarget("broker.example", 8884, "dev/1", "p@ss", True, "/etc/ca.pem")
    assert "p@ss" not in repr(t) and "p@ss" not in t.url()
    assert parse_mqtt_url("mqtts://h").port == 8883 and parse_mqtt_url("mqtt://h").port == 1883


def test_device_publishes_its_own_topics_only(database: str, stack: Broker) -> None:
    settings = ingest_settings(database, stack)
    pump = create(database, stack, "--device", "pump-1")
    now = int(time.time() * 1000)
    own = f"caretaker/v1/{SITE}/devices/pump-1/telemetry"
    other = f"caretaker/v1/{SITE}/devices/pump-2/telemetry"
    guard = f"caretaker/v1/{SITE}/guards/g-wang/scans"
    assert connack(stack.target(None)) == "Not authorized"  # anonymous
    assert connack(pump._replace(password="guess")) == "Not authorized"
    with running_worker(settings):
        reasons = publish_v5(pump, [
            (other, json.dumps({"ts": now, "values": {"p": 9}}).encode()),
            (guard, b'{"scan_id": "7f1c1d7e-2d2c-4f7e-9d0e-3b8f4c1a2b3c", "tag": "T",'
                    b' "ts": 1763900000000}'),
            (own, json.dumps({"ts": now, "values": {"p": 1}}).encode()),
        ])
        assert reasons == ["Not authorized", "Not authorized", "Success"]
        assert wait_until(lambda: _count(database, "SELECT count(*) FROM telemetry"
                                         " WHERE device_id = 'pump-1'") == 1)
    assert _count(database, "SELECT count(*) FROM telemetry WHERE device_id <> 'pump-1'") == 0
    assert _count(database, "SELECT count(*) FROM scans") == 0
    # and it reads nothing (Mosquitto grants the subscription, then delivers nothing the
    # ACL does not allow): the ingest's login, subscribed beside it, gets the message
    got: dict[str, list[bytes]] = {"device": [], "ingest": []}
    clients = []
    for name, login in (("device", pump), ("ingest", settings.mqtt_login("caretaker-ingest-0"))):
        c = paho_client(login)
        c.on_message = lambda cl, u, m, name=name: got[name].append(bytes(m.payload))
        subscribed = threading.Event()
        c.on_subscribe = lambda *a, ev=subscribed: ev.set()
        c.connect(login.host, login.port)
        c.loop_start()
        c.subscribe("caretaker/v1/#", qos=1)
        assert subscribed.wait(5)
        clients.append(c)
    assert publish_v5(pump, [(own, b'{"p": 2}')]) == ["Success"]
    assert wait_until(lambda: got["ingest"] == [b'{"p": 2}'], timeout=5)
    for c in clients:
        c.disconnect()
        c.loop_stop()
    assert got["device"] == []


def test_revoked_login_is_disconnected_and_refused(database: str, stack: Broker) -> None:
    guard = create(database, stack, "--guard", "g-wang")
    client = paho_client(guard)
    gone = threading.Event()
    client.on_disconnect = lambda *a: gone.set()
    client.connect(guard.host, guard.port)
    client.loop_start()
    assert wait_until(client.is_connected, timeout=5)
    listed = cli(database, stack, "mqtt-credentials", "list")
    assert "guard/riverside/g-wang" in listed.stdout and guard.password not in listed.stdout
    began = time.monotonic()
    done = cli(database, stack, "mqtt-credentials", "revoke", "--site", SITE, "--guard",
               "g-wang")
    assert done.returncode == 0, done.stderr
    assert gone.wait(5), "the broker kept the revoked client connected"
    client.loop_stop()
    assert time.monotonic() - began < 10
    assert connack(guard) == "Not authorized"
    again = cli(database, stack, "mqtt-credentials", "revoke", "--username",
                "guard/riverside/g-wang")
    assert again.returncode == 1 and "no live MQTT login" in again.stderr


def test_ingest_client_id_cannot_be_taken_over(database: str, stack: Broker) -> None:
    settings = ingest_settings(database, stack)
    prepare_session(settings)  # the ingest's persistent session, offline now
    device = create(database, stack, "--device", "pump-1")
    # As found in the review: connect with the ingest's client id and a clean start, to
    # discard its session. The broker makes the client id the user name instead.
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    thief = paho_client(device, client_id="caretaker-ingest-0")
    ids: list[str] = []
    thief.on_connect = lambda c, u, f, r, p: ids.append(
        getattr(p, "AssignedClientIdentifier", "") or "")
    thief.connect(device.host, device.port, clean_start=True, properties=props)
    thief.loop_start()
    now = int(time.time() * 1000)
    n = 200
    for i in range(n):
        thief.publish(f"caretaker/v1/{SITE}/devices/pump-1/telemetry",
                      json.dumps({"ts": now - i, "values": {"seq": i}}), qos=1).wait_for_publish(5)
    thief.disconnect()
    thief.loop_stop()
    with running_worker(settings):  # the session survived: everything queued arrives
        assert wait_until(lambda: _count(database, "SELECT count(*) FROM telemetry") == n)


def test_export_writes_the_files_for_your_broker(database: str, stack: Broker,
                                                tmp_path: Path) -> None:
    pump = create(database, stack, "--device", "pump-1")
    done = cli(database, stack, "mqtt-credentials", "export", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    passwords = (tmp_path / "out" / "passwords").read_text()
    acl = (tmp_path / "out" / "acl").read_text()
    assert "device/riverside/pump-1:$7$101$" in passwords and pump.password not in passwords
    assert "caretaker-ingest-0:$7$" in passwords and "caretaker-simulator:$7$" in passwords
    assert "user device/riverside/pump-1\ntopic write caretaker/v1/riverside/devices/pump-1/" \
           "telemetry\n" in acl
    assert "user caretaker-ingest-0\ntopic read caretaker/v1/#\n" in acl
