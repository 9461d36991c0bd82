"""The ingest's MQTT client: the only module importing paho.

Persistent MQTT v5 session (clean_start false, long session expiry), QoS 1, manual
acknowledgement. `on_message` only wraps the message and puts it on a queue; the worker
acknowledges it after its rows are committed. Memory stays bounded because the broker never
has more than `receive_maximum` unacknowledged messages in flight to us: while the database is
down and nothing is acknowledged, the broker keeps the backlog.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from ingest.batch import Message

log = logging.getLogger(__name__)

GROUP = "caretaker"
TOPICS = (
    "caretaker/v1/+/devices/+/telemetry",
    "caretaker/v1/+/devices/+/status",
    "caretaker/v1/+/guards/+/scans",
)
SESSION_EXPIRY = 7 * 24 * 3600  # seconds the broker keeps our session while we are away
LWT_PROPERTY = ("source", "lwt")


def shared(topic: str, group: str = GROUP) -> str:
    """The shared-subscription filter that spreads `topic` over the workers of `group`."""
    return f"$share/{group}/{topic}"


@dataclass(frozen=True, slots=True)
class Received:
    """A queued message with what is needed to acknowledge it later."""

    message: Message
    mid: int
    qos: int
    generation: int  # connection it arrived on: acks are sent on that connection only


def wall_ms() -> int:
    """Wall-clock time in epoch milliseconds (the receive time of a message)."""
    return time.time_ns() // 1_000_000


class Subscriber:
    """Receives the v1 topics into a queue; `ack()` acknowledges after commit."""

    def __init__(self, host: str, port: int, *, client_id: str, receive_maximum: int,
                 topics: Iterable[str] = TOPICS, group: str | None = GROUP,
                 now_ms: Callable[[], int] = wall_ms) -> None:
        self.host, self.port = host, port
        self.client_id = client_id
        self.receive_maximum = max(1, min(receive_maximum, 65535))
        self.filters = [shared(t, group) if group else t for t in topics]
        self._now_ms = now_ms
        # Larger than the broker's in-flight window, so on_message never blocks the network loop.
        self.queue: queue.Queue[Received] = queue.Queue(maxsize=self.receive_maximum * 2)
        self.generation = 0
        self.connected = threading.Event()
        self._stopping = False
        self.subscribed = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                   protocol=MQTTProtocolVersion.MQTTv5, manual_ack=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)

    def start(self) -> None:
        """Connect (resuming the persistent session) and run the network loop in a thread."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY
        props.ReceiveMaximum = self.receive_maximum
        self._client.connect_async(self.host, self.port, keepalive=30, clean_start=False,
                                   properties=props)
        self._client.loop_start()

    def stop(self) -> None:
        """Disconnect (the session and unacknowledged messages stay at the broker)."""
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()

    def ack(self, items: Iterable[Received]) -> int:
        """Acknowledge committed messages received on the current connection; how many."""
        gen, n = self.generation, 0
        ack = self._client.ack
        for item in items:
            if item.qos and item.generation == gen:
                ack(item.mid, item.qos)
                n += 1
        return n

    def _on_connect(self, client: paho.Client, userdata: object, flags: paho.ConnectFlags,
                    reason: object, properties: object) -> None:
        if getattr(reason, "is_failure", False):
            log.error("broker refused the connection: %s", reason)
            return
        # Messages queued from an earlier connection are still written, but never acked
        # here: the broker redelivers them on this connection, and the copy writes nothing.
        self.generation += 1
        log.info("connected to %s:%d as %s (session present: %s)", self.host, self.port,
                 self.client_id, flags.session_present)
        opts = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        client.subscribe([(f, opts) for f in self.filters])
        self.connected.set()

    def _on_subscribe(self, client: paho.Client, userdata: object, mid: int,
                      reasons: list[object], properties: object) -> None:
        failed = [r for r in reasons if getattr(r, "is_failure", False)]
        if failed:
            log.error("subscription refused: %s", failed)
        else:
            self.subscribed.set()

    def _on_disconnect(self, client: paho.Client, userdata: object, flags: object,
                       reason: object, properties: object) -> None:
        self.connected.clear()
        self.subscribed.clear()
        self.generation += 1
        if not self._stopping:
            log.warning("disconnected from the broker (%s); reconnecting", reason)

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = msg._topic.decode("utf-8", "replace")
        lwt = False
        props = getattr(msg, "properties", None)
        if props is not None and LWT_PROPERTY in getattr(props, "UserProperty", ()):
            lwt = True
        self.queue.put(Received(Message(topic, msg.payload, self._now_ms(), lwt),
                                msg.mid, msg.qos, self.generation))
