"""A real MQTT subscriber for the simulator tests: records every message it receives."""

from __future__ import annotations

import threading
import time
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
        self.client.subscribe([(f, 1) for f in filters])
        assert ready.wait(5), "subscription not acknowledged"

    def _on_message(self, client: mqtt_client.Client, userdata: object,
                    msg: mqtt_client.MQTTMessage) -> None:
        with self._lock:
            props = getattr(msg.properties, "UserProperty", None) or []
            self.messages.append(Received(msg.topic, bytes(msg.payload), bool(msg.retain),
                                          time.monotonic(), tuple(props)))

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        """Wait until at least `count` messages arrived, then a short settle; return them all."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # anything extra (duplicates) would arrive now
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()
