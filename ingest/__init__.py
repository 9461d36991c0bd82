"""MQTT → TimescaleDB: subscriber, payload parsing, batched COPY writer, dead letters."""
