"""Helpers for ingest tests: publishing, running a worker, waiting on the database."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from caretaker.settings import Settings
from ingest.mqtt import Subscriber
from ingest.worker import IngestWorker


def ingest_settings(database: str, mqtt: tuple[str, int], **extra: Any) -> Settings:
    """Settings for a worker of this test: own client id and shared-subscription group."""
    tag = uuid.uuid4().hex[:10]
    return Settings(database_url=database, mqtt_url=f"mqtt://{mqtt[0]}:{mqtt[1]}",
                    ingest_client_id=f"t-{tag}", ingest_share_group=f"g{tag}", **extra)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a subprocess the same settings."""
    return {"CARETAKER_DATABASE_URL": str(settings.database_url),
            "CARETAKER_MQTT_URL": str(settings.mqtt_url),
            "CARETAKER_INGEST_CLIENT_ID": settings.ingest_client_id,
            "CARETAKER_INGEST_SHARE_GROUP": settings.ingest_share_group,
            "CARETAKER_INGEST_BATCH_SIZE": str(settings.ingest_batch_size)}


def prepare_session(settings: Settings, index: int = 0) -> None:
    """Create worker `index`'s persistent session and subscription, then leave it offline."""
    host, port = settings.mqtt()
    sub = Subscriber(host, port, client_id=f"{settings.ingest_client_id}-{index}",
                     group=settings.ingest_share_group, receive_maximum=100)
    sub.start()
    assert sub.subscribed.wait(10), "subscription not confirmed"
    sub.stop()


def forget_session(settings: Settings, workers: int = 1) -> None:
    """Remove the workers' sessions so the shared broker stops queueing for them."""
    host, port = settings.mqtt()
    for i in range(workers):
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{settings.ingest_client_id}-{i}",
                        protocol=MQTTProtocolVersion.MQTTv5)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 0
        c.connect(host, port, clean_start=True, properties=props)
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

    def __init__(self, mqtt: tuple[str, int], *, v5: bool = False) -> None:
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311)
        self.client.max_inflight_messages_set(200)
        self.client.max_queued_messages_set(0)
        self.client.connect(*mqtt)
        self.client.loop_start()
        self.infos: list[paho.MQTTMessageInfo] = []

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = False,
                properties: Properties | None = None) -> None:
        self.infos.append(self.client.publish(topic, payload, qos=1, retain=retain,
                                              properties=properties))

    def publish_all(self, messages: Iterable[tuple[str, bytes | str]]) -> None:
        for topic, payload in messages:
            self.publish(topic, payload)

    def close(self, timeout: float = 60) -> None:
        for info in self.infos:
            info.wait_for_publish(timeout)
        self.client.disconnect()
        self.client.loop_stop()


def publish(mqtt: tuple[str, int], messages: Iterable[tuple[str, bytes | str]]) -> None:
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
