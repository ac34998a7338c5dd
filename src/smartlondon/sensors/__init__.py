"""The sensor hub: OGC SensorThings API v1.1 with its MQTT extension (docs/sensors.md)."""
