"""Helpers for ingest tests: publishing, running a worker, waiting on the database."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from caretaker.settings import MqttTarget, Settings
from ingest.mqtt import Subscriber
from ingest.worker import IngestWorker
from tests.fix_servers import Broker, paho_client


def ingest_settings(database: str, mqtt: Broker, **extra: Any) -> Settings:
    """Settings for this test's workers: worker i logs in as caretaker-ingest-i, its password
    in the broker's secrets.json (as under `caretaker up`)."""
    return Settings(database_url=database, mqtt_url=mqtt.url(), state_dir=mqtt.state_dir,
                    **extra)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a subprocess the same settings."""
    return {"CARETAKER_DATABASE_URL": str(settings.database_url),
            "CARETAKER_MQTT_URL": str(settings.mqtt_url),
            "CARETAKER_STATE_DIR": str(settings.state_dir),
            "CARETAKER_INGEST_CLIENT_ID": settings.ingest_client_id,
            "CARETAKER_INGEST_SHARE_GROUP": settings.ingest_share_group,
            "CARETAKER_INGEST_WORKERS": str(settings.ingest_workers),
            "CARETAKER_INGEST_BATCH_SIZE": str(settings.ingest_batch_size)}


def prepare_session(settings: Settings, index: int = 0) -> None:
    """Create worker `index`'s persistent session and subscription, then leave it offline."""
    client_id = f"{settings.ingest_client_id}-{index}"
    group = settings.ingest_share_group if settings.ingest_workers > 1 else None
    sub = Subscriber(settings.mqtt_login(client_id), client_id=client_id, group=group,
                     receive_maximum=100)
    sub.start()
    assert sub.subscribed.wait(10), "subscription not confirmed"
    sub.stop()


def forget_session(settings: Settings, workers: int = 1) -> None:
    """Remove the workers' sessions so the shared broker stops queueing for them."""
    for i in range(workers):
        target = settings.mqtt_login(f"{settings.ingest_client_id}-{i}")
        c = paho_client(target)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 0
        c.connect(target.host, target.port, clean_start=True, properties=props)
        c.loop_start()
        deadline = time.monotonic() + 5
        while not c.is_connected() and time.monotonic() < deadline:
            time.sleep(0.01)
        c.disconnect()
        c.loop_stop()


@contextmanager
def running_worker(settings: Settings, index: int = 0) -> Iterator[IngestWorker]:
    """An ingest worker running in a thread, subscribed before the block starts."""
    worker = IngestWorker(settings, index=index)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert worker.subscriber.subscribed.wait(10), "worker did not subscribe"
        yield worker
    finally:
        worker.stop.set()
        thread.join(20)
        assert not thread.is_alive()


class Publisher:
    """A QoS 1 publisher that can wait until the broker has every message."""

    def __init__(self, mqtt: Broker | MqttTarget, *, v5: bool = False) -> None:
        target = mqtt.take("simulator") if isinstance(mqtt, Broker) else mqtt
        self.client = paho_client(target, v5=v5)
        self.client.max_inflight_messages_set(200)
        self.client.max_queued_messages_set(0)
        self.acked = 0  # PUBACKs received: one per message, resends included
        self.client.on_publish = self._on_publish
        self.client.connect(target.host, target.port)
        self.client.loop_start()
        self.infos: list[paho.MQTTMessageInfo] = []

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any,
                    properties: Any) -> None:
        self.acked += 1

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = False,
                properties: Properties | None = None) -> None:
        self.infos.append(self.client.publish(topic, payload, qos=1, retain=retain,
                                              properties=properties))

    def publish_all(self, messages: Iterable[tuple[str, bytes | str]]) -> None:
        for topic, payload in messages:
            self.publish(topic, payload)

    def close(self, timeout: float = 60) -> None:
        """Wait until the broker acknowledged every message. paho queues a message published
        while it is disconnected and sends it on reconnecting, but that message's info says
        "not connected" for ever, so PUBACKs are counted instead."""
        assert wait_until(lambda: self.acked >= len(self.infos), timeout, every=0.01), \
            f"{len(self.infos) - self.acked} of {len(self.infos)} messages not acknowledged"
        self.client.disconnect()
        self.client.loop_stop()


def publish(mqtt: Broker | MqttTarget, messages: Iterable[tuple[str, bytes | str]]) -> None:
    """Publish every message at QoS 1 and wait until the broker has them all."""
    pub = Publisher(mqtt)
    pub.publish_all(messages)
    pub.close()


def wait_until(check: Callable[[], bool], timeout: float = 30, every: float = 0.1) -> bool:
    """Poll `check` until it is true; False on timeout (end-to-end tests only)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(every)
    return check()
