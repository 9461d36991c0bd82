"""Patrol and inspection: schedules → route runs → classified visits → inspection gaps."""
