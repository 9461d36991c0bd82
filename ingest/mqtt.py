"""The ingest's MQTT client: the only module importing paho.

Persistent MQTT v5 session (clean_start false, long session expiry), QoS 1, manual
acknowledgement. `on_message` only wraps the message and puts it in the inbox; the worker
acknowledges it after its rows are committed. Memory stays bounded because the broker never
has more than `receive_maximum` unacknowledged messages in flight to us: while the database is
down and nothing is acknowledged, the broker keeps the backlog.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
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


class Received(NamedTuple):
    """A queued message with what is needed to acknowledge it later."""

    message: Message
    mid: int
    qos: int
    generation: int  # connection it arrived on: acks are sent on that connection only


class Inbox:
    """Messages handed from the network thread to the worker: a deque and a wake-up event.

    Cheaper than queue.Queue on the hot path (an append, no lock while the worker is busy).
    Its size is bounded by the broker's in-flight window (receive maximum), not here.
    """

    def __init__(self) -> None:
        self._items: deque[Received] = deque()
        self._ready = threading.Event()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Received) -> None:
        """Add a message (network thread)."""
        self._items.append(item)
        if not self._ready.is_set():
            self._ready.set()

    def take(self, limit: int, timeout: float) -> list[Received]:
        """Up to `limit` messages, waiting at most `timeout` seconds for the first one."""
        items = self._items
        if not items:
            self._ready.clear()
            if not items and not self._ready.wait(timeout):
                return []
        popleft = items.popleft
        return [popleft() for _ in range(min(limit, len(items)))]


def wall_ms() -> int:
    """Wall-clock time in epoch milliseconds (the receive time of a message)."""
    return time.time_ns() // 1_000_000


class Subscriber:
    """Receives the v1 topics into `inbox`; `ack()` acknowledges after commit."""

    def __init__(self, host: str, port: int, *, client_id: str, receive_maximum: int,
                 topics: Iterable[str] = TOPICS, group: str | None = GROUP,
                 now_ms: Callable[[], int] = wall_ms) -> None:
        self.host, self.port = host, port
        self.client_id = client_id
        self.receive_maximum = max(1, min(receive_maximum, 65535))
        self.filters = [shared(t, group) if group else t for t in topics]
        self._now_ms = now_ms
        self.inbox = Inbox()
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
        client = self._client
        ack = client.ack
        # paho wakes its network thread with one socket write per queued packet; for a batch
        # of acks one wake-up is enough (measured: the per-ack write was the worker's largest
        # cost). _sockpairW is paho's private wake-up socket.
        wake = getattr(client, "_sockpairW", None)
        if wake is not None:
            client._sockpairW = None
        try:
            for item in items:
                if item.qos and item.generation == gen:
                    ack(item.mid, item.qos)
                    n += 1
        finally:
            if wake is not None:
                if client._sockpairW is None:  # unless a reconnect made a new one meanwhile
                    client._sockpairW = wake
                try:
                    wake.send(b"0")
                except OSError:
                    pass
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

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int,
                      reasons: list[ReasonCode], properties: Properties) -> None:
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
        props = getattr(msg, "properties", None)
        # Properties sets only the attributes a packet carries
        lwt = props is not None and LWT_PROPERTY in vars(props).get("UserProperty", ())
        self.inbox.put(Received(Message(topic, bytes(msg.payload), self._now_ms(), lwt),
                                msg.mid, msg.qos, self.generation))
