"""The ingest's MQTT client: the only module importing paho.

Persistent MQTT v5 session (clean_start false, long session expiry), QoS 1, manual
acknowledgement. `on_message` only wraps the message and puts it in the inbox; the worker
acknowledges it after its rows are committed. The network thread drives paho through its
external-loop API (loop_read/loop_write/loop_misc and the socket callbacks) with its own
select(), so a batch of acknowledgements costs one wake-up. Memory is bounded twice: the
broker never has more than `receive_maximum` unacknowledged messages in flight to us, and
while the messages held (received, not yet acknowledged) exceed `max_bytes`, the thread stops
reading the socket, so TCP holds the broker back until the writer drains.
"""

from __future__ import annotations

import logging
import select
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from caretaker.backoff import backoff
from caretaker.settings import MqttTarget
from ingest.batch import Message

log = logging.getLogger(__name__)

GROUP = "caretaker"
TOPICS = (
    "caretaker/v1/+/devices/+/telemetry",
    "caretaker/v1/+/devices/+/status",
    "caretaker/v1/+/guards/+/scans",
)
SESSION_EXPIRY = 7 * 24 * 3600  # seconds the broker keeps our session while we are away
KEEPALIVE = 30
LWT_PROPERTY = ("source", "lwt")
READS_PER_WAKE = 256  # packets read per select() wake-up before looking at the limits again


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

    `held`/`held_bytes` count what was received and not yet released (acknowledged or
    dropped), including messages the worker has taken but not committed.
    """

    def __init__(self) -> None:
        self._items: deque[Received] = deque()
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self.held = 0
        self.held_bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Received) -> None:
        """Add a message (network thread)."""
        with self._lock:
            self.held += 1
            self.held_bytes += len(item.message.payload)
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
        out = []
        for _ in range(min(limit, len(items))):
            try:
                out.append(popleft())
            except IndexError:  # emptied by drop_waiting meanwhile
                break
        return out

    def release(self, items: Iterable[Received]) -> None:
        """Forget messages that are done with (acknowledged, or to be redelivered)."""
        n = size = 0
        for item in items:
            n += 1
            size += len(item.message.payload)
        with self._lock:
            self.held -= n
            self.held_bytes -= size

    def drop_waiting(self) -> int:
        """Drop messages not yet taken (the broker sends them again); how many."""
        dropped = []
        while True:
            try:
                dropped.append(self._items.popleft())
            except IndexError:
                break
        self.release(dropped)
        return len(dropped)


def wall_ms() -> int:
    """Wall-clock time in epoch milliseconds (the receive time of a message)."""
    return time.time_ns() // 1_000_000


class Subscriber:
    """Receives the v1 topics into `inbox`; `ack()` acknowledges after commit.

    With `group` None (one worker) the subscription is a plain one: Mosquitto 2.0 restores a
    persistent session's plain subscriptions after a restart, but not its shared ones, so a
    single worker loses nothing across broker restarts. Several workers need `group`
    ($share/<group>/...) and a broker that keeps shared subscriptions across restarts.
    """

    def __init__(self, target: MqttTarget, *, client_id: str, receive_maximum: int,
                 max_bytes: int = 256 * 1024 * 1024, topics: Iterable[str] = TOPICS,
                 group: str | None = None, stale_group: str = GROUP,
                 now_ms: Callable[[], int] = wall_ms) -> None:
        self.target = target
        self.client_id = client_id
        self.receive_maximum = max(1, min(receive_maximum, 65535))
        self.max_bytes = max_bytes
        self.topics = list(topics)
        self.filters = [shared(t, group) if group else t for t in self.topics]
        # Subscriptions of the other mode, left in the persistent session by an earlier run.
        self._stale = list(self.topics) if group else [shared(t, stale_group)
                                                        for t in self.topics]
        self._now_ms = now_ms
        self.inbox = Inbox()
        self.generation = 0
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.refused: str | None = None  # the broker's reason, while it refuses our login
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._reads = 0
        self._was_connected = False
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=MQTTProtocolVersion.MQTTv5, manual_ack=True)
        if target.username:
            client.username_pw_set(target.username, target.password)
        if target.tls:
            client.tls_set(ca_certs=target.ca_file, cert_reqs=ssl.CERT_REQUIRED)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        # Acks queued by the writer thread: one wake-up of select() per burst, not per ack.
        client.on_socket_register_write = self._wake
        self._client = client

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect (resuming the persistent session) and run the network loop in a thread."""
        self._thread = threading.Thread(target=self._run, name="mqtt-network", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Disconnect (the session and unacknowledged messages stay at the broker)."""
        self._stopping.set()
        self._wake(None, None, None)
        if self._thread is not None:
            self._thread.join(10)
        self._wake_r.close()
        self._wake_w.close()

    def ack(self, items: list[Received]) -> int:
        """Acknowledge committed messages received on the current connection; how many.

        Messages from an earlier connection are not acknowledged: the broker sends them again
        on this one, and the copy writes nothing. Either way they are released.
        """
        gen, n = self.generation, 0
        ack = self._client.ack
        for item in items:
            if item.qos and item.generation == gen:
                ack(item.mid, item.qos)
                n += 1
        self.inbox.release(items)
        self._wake(None, None, None)  # reading may resume now
        return n

    # -- the network thread ---------------------------------------------------------------------

    def _wake(self, client: object, userdata: object, sock: object) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # a wake-up is already pending (or we are closing)

    def _full(self) -> bool:
        inbox = self.inbox
        return inbox.held_bytes >= self.max_bytes or inbox.held >= self.receive_maximum * 4

    def _connect(self) -> bool:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY
        props.ReceiveMaximum = self.receive_maximum
        try:
            self._client.connect(self.target.host, self.target.port, keepalive=KEEPALIVE,
                                 clean_start=False, properties=props)
        except (OSError, ssl.SSLError) as exc:
            log.warning("cannot reach the broker at %s: %s", self.target.url(), exc)
            return False
        return True

    def _run(self) -> None:
        client = self._client
        failures, attempted = 0, False
        try:
            while not self._stopping.is_set():
                sock = client.socket()
                if sock is None:
                    if attempted:  # the last connection failed, or dropped after working
                        failures = 1 if self._was_connected else failures + 1
                        self._stopping.wait(backoff(failures, first=0.5, cap=10.0))
                        if self._stopping.is_set():
                            break
                    self._was_connected, attempted = False, True
                    self._connect()
                    continue
                paused = self._full()
                readers: list[Any] = [self._wake_r] if paused else [self._wake_r, sock]
                writers = [sock] if client.want_write() else []
                pending = isinstance(sock, ssl.SSLSocket) and sock.pending() and not paused
                readable, writable, _ = select.select(readers, writers, [],
                                                      0 if pending else 1.0)
                if self._wake_r in readable:
                    try:
                        while self._wake_r.recv(4096):
                            pass
                    except BlockingIOError:
                        pass
                rc = MQTTErrorCode.MQTT_ERR_SUCCESS
                if sock in readable or pending:
                    rc = self._read_some()
                if rc == MQTTErrorCode.MQTT_ERR_SUCCESS and client.socket() is not None \
                        and client.want_write():
                    rc = client.loop_write()
                if rc == MQTTErrorCode.MQTT_ERR_SUCCESS and client.socket() is not None \
                        and not paused:
                    # Not while paused: its keepalive check would count the unread PINGRESP
                    # as missing. The broker drops us after 1.5 × keepalive without a packet
                    # from us; the session stays and what we held is sent again.
                    client.loop_misc()
        finally:
            if client.socket() is not None:
                client.disconnect()
                client.loop_write()
            self.connected.clear()

    def _read_some(self) -> MQTTErrorCode:
        """Read the packets waiting (at most READS_PER_WAKE, fewer once the limits are hit)."""
        client = self._client
        for _ in range(READS_PER_WAKE):
            before = self._reads
            rc = client.loop_read()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or self._reads == before or self._full():
                return rc
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    # -- paho callbacks (network thread) --------------------------------------------------------

    def _on_connect(self, client: paho.Client, userdata: object, flags: paho.ConnectFlags,
                    reason: ReasonCode, properties: object) -> None:
        if reason.is_failure:
            self.refused = str(reason)
            log.error("the broker refused %s as %s: %s", self.client_id,
                      self.target.username or "anonymous", reason)
            return
        self.refused = None
        self._was_connected = True
        # What is still waiting from the earlier connection is sent again on this one: drop
        # it here, so memory holds one copy (taken batches are written but not acked).
        dropped = self.inbox.drop_waiting()
        self.generation += 1
        log.info("connected to %s as %s (session present: %s, %d waiting dropped)",
                 self.target.url(), self.client_id, flags.session_present, dropped)
        opts = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        client.subscribe([(f, opts) for f in self.filters])
        client.unsubscribe(self._stale)
        self.connected.set()

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int,
                      reasons: list[ReasonCode], properties: Properties) -> None:
        failed = [r for r in reasons if r.is_failure]
        if failed:
            log.error("subscription refused: %s", failed)
        else:
            self.subscribed.set()

    def _on_disconnect(self, client: paho.Client, userdata: object, flags: object,
                       reason: object, properties: object) -> None:
        self.connected.clear()
        self.subscribed.clear()
        self.generation += 1
        if not self._stopping.is_set():
            log.warning("disconnected from the broker (%s); reconnecting", reason)

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        self._reads += 1
        try:
            topic = msg.topic
        except UnicodeDecodeError:  # brokers refuse such topics; kept as a dead letter if not
            topic = "<topic not UTF-8>"
        props = getattr(msg, "properties", None)
        # Properties sets only the attributes a packet carries
        lwt = props is not None and LWT_PROPERTY in vars(props).get("UserProperty", ())
        self.inbox.put(Received(Message(topic, bytes(msg.payload), self._now_ms(), lwt),
                                msg.mid, msg.qos, self.generation))
