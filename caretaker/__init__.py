"""Caretaker: equipment telemetry and patrol inspection for property-service centres."""
