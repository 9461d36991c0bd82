"""The broker the fixtures start is real, and refuses who it should."""

import threading

import paho.mqtt.client as mqtt_client

from caretaker.mqtt_credentials import SIMULATOR_USER, ingest_username
from tests.fix_servers import Broker, connack, paho_client


def test_message_reaches_subscriber(mqtt: Broker) -> None:
    got: list[bytes] = []
    subscribed, received = threading.Event(), threading.Event()

    def on_message(client: mqtt_client.Client, userdata: object,
                   msg: mqtt_client.MQTTMessage) -> None:
        got.append(bytes(msg.payload))
        received.set()

    sub = paho_client(mqtt.target(ingest_username(0)))
    sub.on_message = on_message
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.connect(mqtt.host, mqtt.port)
    sub.subscribe("caretaker/v1/+/devices/+/telemetry", qos=1)
    sub.loop_start()
    assert subscribed.wait(5)
    pub = paho_client(mqtt.target(SIMULATOR_USER))
    pub.connect(mqtt.host, mqtt.port)
    pub.loop_start()
    info = pub.publish("caretaker/v1/s1/devices/p1/telemetry", b'{"temp": 21.5}', qos=1)
    info.wait_for_publish(5)
    assert received.wait(5)
    assert got == [b'{"temp": 21.5}']
    for c in (pub, sub):
        c.loop_stop()
        c.disconnect()


def test_anonymous_and_wrong_password_are_refused(mqtt: Broker) -> None:
    assert connack(mqtt.target(None)) == "Not authorized"
    wrong = mqtt.target(SIMULATOR_USER)._replace(password="not-the-password")
    assert connack(wrong) == "Not authorized"
    assert connack(mqtt.target(SIMULATOR_USER)) == "Success"


def test_the_broker_does_not_run_as_root(mqtt: Broker) -> None:
    import os
    import pwd

    import psutil

    config = mqtt.server.config.read_text()
    assert "allow_anonymous false" in config and "use_username_as_clientid true" in config
    assert "user root" not in config
    pid = mqtt.server.pid
    assert pid is not None
    expected = pwd.getpwnam("mosquitto").pw_uid if os.geteuid() == 0 else os.geteuid()
    assert psutil.Process(pid).uids().effective == expected
