"""The broker the fixtures start is real: a published message reaches a subscriber."""

import threading

import paho.mqtt.client as mqtt_client
from paho.mqtt.enums import CallbackAPIVersion


def test_message_reaches_subscriber(mqtt: tuple[str, int]) -> None:
    got: list[bytes] = []
    subscribed, received = threading.Event(), threading.Event()

    def on_message(client: mqtt_client.Client, userdata: object,
                   msg: mqtt_client.MQTTMessage) -> None:
        got.append(bytes(msg.payload))
        received.set()

    sub = mqtt_client.Client(CallbackAPIVersion.VERSION2, client_id="t-sub")
    sub.on_message = on_message
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.connect(*mqtt)
    sub.subscribe("caretaker/v1/+/devices/+/telemetry", qos=1)
    sub.loop_start()
    assert subscribed.wait(5)
    pub = mqtt_client.Client(CallbackAPIVersion.VERSION2, client_id="t-pub")
    pub.connect(*mqtt)
    pub.loop_start()
    info = pub.publish("caretaker/v1/s1/devices/p1/telemetry", b'{"temp": 21.5}', qos=1)
    info.wait_for_publish(5)
    assert received.wait(5)
    assert got == [b'{"temp": 21.5}']
    for c in (pub, sub):
        c.loop_stop()
        c.disconnect()
