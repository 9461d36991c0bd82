"""mqtts:// with a CA file: the ingest's subscriber and the simulator's publisher over TLS."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from caretaker.mqtt_credentials import SIMULATOR_USER, ingest_username
from caretaker.servers import free_port
from caretaker.settings import Settings
from ingest.mqtt import Subscriber
from simulators.publisher import Publisher, PublishError
from tests.fix_servers import Broker, broker_dir, start_broker

pytestmark = pytest.mark.e2e


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(where: Path, name: str) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it: (ca, cert, key)."""
    where.mkdir()
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             f"/CN={name} CA", "-keyout", "ca.key", "-out", "ca.crt", cwd=where)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", "server.key", "-out", "server.csr", cwd=where)
    (where / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.crt",
             cwd=where)
    return where / "ca.crt", where / "server.crt", where / "server.key"


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[Broker, Path, Path]]:
    """A broker with a TLS listener; yields it, its CA, and another CA."""
    ca, cert, key = make_ca(tmp_path / "ca", "test")
    other, _, _ = make_ca(tmp_path / "other", "other")
    state = broker_dir()
    broker = start_broker(state, tls_port=free_port(), certfile=cert, keyfile=key)
    yield broker, ca, other
    broker.server.stop()
    shutil.rmtree(state, ignore_errors=True)


# paho leaves the socket of a failed TLS handshake (the untrusted CA below) to the garbage
# collector, which warns about it.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_ingest_and_simulator_over_tls(tls_broker: tuple[Broker, Path, Path]) -> None:
    broker, ca, other = tls_broker
    port = broker.server.tls_port

    def url(user: str) -> str:
        return f"mqtts://{user}:{broker.passwords[user]}@127.0.0.1:{port}"

    ingest = Settings(mqtt_url=url(ingest_username(0)), mqtt_ca_file=str(ca)).mqtt_target()
    assert ingest.tls and ingest.ca_file == str(ca)
    sub = Subscriber(ingest, client_id=ingest_username(0), receive_maximum=100)
    sub.start()
    try:
        assert sub.subscribed.wait(10), sub.refused
        sim = Settings(mqtt_url=url(SIMULATOR_USER), mqtt_ca_file=str(ca)).mqtt_target()
        pub = Publisher(sim)
        pub.publish("caretaker/v1/s/devices/d/telemetry", b'{"t": 1}')
        assert pub.flush(10)
        pub.close()
        got = sub.inbox.take(10, 10)
        assert [r.message.payload for r in got] == [b'{"t": 1}']
    finally:
        sub.stop()
    untrusted = Settings(mqtt_url=url(SIMULATOR_USER), mqtt_ca_file=str(other)).mqtt_target()
    with pytest.raises(PublishError):
        Publisher(untrusted).shared()
