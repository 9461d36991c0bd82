"""Publishing over real MQTT (paho-mqtt 2.x, MQTT v5, QoS 1), throttled by an in-flight window.

One shared connection publishes for the whole fleet (a gateway), with the simulator's service
login; a device that needs a real Last Will gets a connection of its own, with its own device
login and `offline` (retained) as its will, marked with the MQTT v5 user property
source=lwt. A device without a login of its own stays on the shared connection, and its
"dropped connection" is announced there as the broker would (the same message and property).
The connections are driven from the caller's thread (no paho network thread): a publish
writes straight to the socket, and the caller's waits (`idle`) service the sockets. This is
about three times faster than paho's threaded loop. The only module of the simulator that
imports paho.
"""

from __future__ import annotations

import logging
import select
import socket
import time
import uuid
from collections.abc import Mapping

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from caretaker.settings import MqttTarget

log = logging.getLogger(__name__)

QOS = 1
WILL_PROPERTY = ("source", "lwt")
SERVICE_EVERY = 64  # publishes between reads of the broker's acknowledgements
RECONNECT_FOR = 60.0  # seconds to keep trying a lost connection before giving up


class PublishError(RuntimeError):
    """The broker could not be reached or did not acknowledge in time."""


class Publisher:
    """Publishes at QoS 1 through a shared connection and per-device connections.

    At most `window` messages are unacknowledged at once across all connections: a publish
    waits (servicing the sockets) until the broker acknowledges an earlier one, so a fast
    producer cannot overrun the broker.
    """

    def __init__(self, target: MqttTarget, *, window: int = 1000,
                 device_logins: Mapping[str, MqttTarget] | None = None,
                 client_prefix: str | None = None, keepalive: int = 30,
                 connect_timeout: float = 10.0) -> None:
        self.target = target
        self.host, self.port = target.host, target.port
        self.device_logins = dict(device_logins or {})
        self.window = window
        self.keepalive = keepalive
        self.connect_timeout = connect_timeout
        self.prefix = client_prefix or f"caretaker-sim-{uuid.uuid4().hex[:8]}"
        self.unacked = 0
        self.acked = 0
        self._own: dict[str, mqtt.Client] = {}
        self._shared: mqtt.Client | None = None
        self._virtual: dict[str, str] = {}  # device key → will topic, for devices without login
        self._since_service = 0

    # -- connections --------------------------------------------------------------------------

    def _client(self, client_id: str, target: MqttTarget,
                will_topic: str | None = None) -> mqtt.Client:
        # A broker that forces the client id to the user name (ours) ignores `client_id`.
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=MQTTProtocolVersion.MQTTv5)
        if target.username:
            client.username_pw_set(target.username, target.password)
        if target.tls:
            client.tls_set(ca_certs=target.ca_file)
        client.max_inflight_messages_set(self.window)
        client.max_queued_messages_set(0)
        if will_topic:
            # The user property lets a v5 subscriber (the ingest) tell a will from a status.
            props = Properties(PacketTypes.WILLMESSAGE)
            props.UserProperty = [WILL_PROPERTY]
            client.will_set(will_topic, b"offline", qos=QOS, retain=True, properties=props)
        failure: list[str] = []

        def on_connect(c: mqtt.Client, userdata: object, flags: object, reason: object,
                       props: object) -> None:
            if getattr(reason, "is_failure", False):
                failure.append(str(reason))

        client.on_connect = on_connect
        client.on_publish = self._on_publish
        try:
            client.connect(self.host, self.port, keepalive=self.keepalive, clean_start=True)
        except OSError as exc:
            raise PublishError(f"cannot reach the MQTT broker at {self.host}:{self.port}: "
                               f"{exc}") from exc
        deadline = time.monotonic() + self.connect_timeout
        while not client.is_connected() and not failure and time.monotonic() < deadline:
            client.loop(0.05)
        if failure or not client.is_connected():
            client.disconnect()
            raise PublishError(f"the broker at {self.host}:{self.port} refused {client_id}: "
                               f"{failure[0] if failure else 'no CONNACK'}")
        return client

    def shared(self) -> mqtt.Client:
        """The fleet's shared connection, opened on first use."""
        if self._shared is None:
            self._shared = self._client(f"{self.prefix}-fleet", self.target)
        return self._shared

    def open(self, key: str, will_topic: str) -> None:
        """Open (or re-open) device `key`'s own connection with its Last Will `offline`."""
        if key in self._own or key in self._virtual:
            return
        login = self.device_logins.get(key)
        if login is None:
            self._virtual[key] = will_topic
            return
        safe = key.replace("/", ".")
        deadline = time.monotonic() + self.connect_timeout
        while True:
            try:
                self._own[key] = self._client(f"{self.prefix}-{safe}", login, will_topic)
                return
            except PublishError:  # a login just created: the broker may not have reloaded
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def drop(self, key: str) -> None:
        """Close device `key`'s connection without DISCONNECT: the broker publishes its will."""
        if key in self._virtual:
            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = [WILL_PROPERTY]
            self.publish(self._virtual.pop(key), b"offline", retain=True, properties=props)
            return
        client = self._own.get(key)
        if client is None:
            return
        self.flush()  # what the device sent before it failed has arrived
        del self._own[key]
        sock = client.socket()
        if isinstance(sock, socket.socket):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def connected(self, key: str) -> bool:
        """True while device `key` has its own open connection."""
        return key in self._own or key in self._virtual

    def _clients(self) -> list[mqtt.Client]:
        return [*self._own.values(), *([self._shared] if self._shared else [])]

    # -- the network loop ---------------------------------------------------------------------

    def _service(self, client: mqtt.Client, timeout: float = 0.0) -> None:
        """Read acknowledgements, send pings and pending writes; reconnect a lost connection."""
        rc = client.loop(timeout)
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            return
        log.warning("connection to the broker lost (%s); reconnecting", mqtt.error_string(rc))
        deadline = time.monotonic() + RECONNECT_FOR
        while time.monotonic() < deadline:
            try:
                client.reconnect()  # paho sends the unacknowledged messages again
                return
            except OSError:
                time.sleep(1.0)
        raise PublishError(f"the broker at {self.host}:{self.port} is gone "
                           f"for {RECONNECT_FOR:.0f} s")

    def idle(self, seconds: float) -> None:
        """Wait `seconds`, servicing every connection meanwhile (acks, keepalive pings)."""
        deadline = time.monotonic() + seconds
        while True:
            clients = self._clients()
            for client in clients:
                self._service(client)
            left = deadline - time.monotonic()
            if left <= 0:
                return
            socks = [s for c in clients if isinstance(s := c.socket(), socket.socket)]
            if socks:
                select.select(socks, [], [], min(left, 1.0))
            else:
                time.sleep(min(left, 1.0))

    # -- publishing ---------------------------------------------------------------------------

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, reason: object,
                    props: object) -> None:
        self.unacked -= 1
        self.acked += 1

    def publish(self, topic: str, payload: bytes, *, retain: bool = False,
                client: str | None = None, properties: Properties | None = None) -> None:
        """Publish at QoS 1 on the device's own connection (if open) or the shared one."""
        conn = self._own.get(client) if client else None
        if conn is None:
            conn = self.shared()
        if self.unacked >= self.window:
            deadline = time.monotonic() + 60
            while self.unacked >= self.window:
                if time.monotonic() > deadline:
                    raise PublishError("the broker acknowledged nothing for 60 s")
                for c in self._clients():
                    self._service(c, 0.01 if c is conn else 0.0)
        self.unacked += 1
        info = conn.publish(topic, payload, qos=QOS, retain=retain, properties=properties)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            # NO_CONN: paho keeps the message and sends it after reconnecting.
            self.unacked -= 1
            raise PublishError(f"publish on {topic} failed: {mqtt.error_string(info.rc)}")
        self._since_service += 1
        if self._since_service >= SERVICE_EVERY:
            self._since_service = 0
            self._service(conn)

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until every published message is acknowledged; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.unacked > 0:
            if time.monotonic() > deadline:
                return False
            for client in self._clients():
                self._service(client, 0.01)
        return True

    def close(self) -> None:
        """Wait for acknowledgements, then disconnect every connection cleanly."""
        self.flush()
        for client in self._clients():
            client.disconnect()
            self._service_until_closed(client)
        self._own.clear()
        self._shared = None

    def _service_until_closed(self, client: mqtt.Client) -> None:
        deadline = time.monotonic() + 2.0
        while client.socket() is not None and time.monotonic() < deadline:
            if client.loop(0.05) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return
