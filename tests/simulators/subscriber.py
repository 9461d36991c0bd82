"""A real MQTT subscriber for the simulator tests: records every message it receives."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass

import paho.mqtt.client as mqtt_client

from tests.fix_servers import Broker, paho_client


@dataclass(frozen=True)
class Received:
    """One message as the subscriber got it."""

    topic: str
    payload: bytes
    retain: bool
    at: float
    user_properties: tuple[tuple[str, str], ...] = ()


class Subscriber:
    """Subscribes to topic filters at QoS 1 and keeps what arrives, in order."""

    def __init__(self, mqtt: Broker, *filters: str) -> None:
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        ready = threading.Event()
        target = mqtt.take("ingest")  # a login that may read caretaker/v1/#
        self.client = paho_client(target)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: ready.set() if len(a) else None
        self.client.connect(target.host, target.port)
        self.client.loop_start()
        # A barrier published once the others are done arrives after all the broker queued for
        # this subscriber before (Mosquitto routes messages in the order it receives them); it
        # is published by a login that may write, as the ingest's login may only read.
        self._barrier = f"caretaker/v1/t-barrier-{uuid.uuid4().hex[:12]}/devices/b/telemetry"
        self._flushed = threading.Event()
        writer = mqtt.take("simulator")
        self._writer = paho_client(writer)
        self._writer.connect(writer.host, writer.port)
        self._writer.loop_start()
        self.client.subscribe([(f, 1) for f in (*filters, self._barrier)])
        assert ready.wait(5), "subscription not acknowledged"

    def _on_message(self, client: mqtt_client.Client, userdata: object,
                    msg: mqtt_client.MQTTMessage) -> None:
        if msg.topic == self._barrier:
            self._flushed.set()
            return
        with self._lock:
            props = getattr(msg.properties, "UserProperty", None) or []
            self.messages.append(Received(msg.topic, bytes(msg.payload), bool(msg.retain),
                                          time.monotonic(), tuple(props)))

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        """Wait until at least `count` messages arrived and the broker's queue is flushed."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        # anything extra (duplicates) the broker holds for us arrives before the barrier
        self._flushed.clear()
        self._writer.publish(self._barrier, b"{}", qos=1)
        assert self._flushed.wait(10), "the barrier message did not come back"
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        """Disconnect."""
        for client in (self.client, self._writer):
            client.disconnect()
            client.loop_stop()
