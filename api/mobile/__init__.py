"""The phone page for guards and technicians (/m/)."""
