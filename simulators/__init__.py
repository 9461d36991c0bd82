"""Device fleet and patrol guards that publish over real MQTT; fault scenarios."""
