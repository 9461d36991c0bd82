"""Tickets: work orders whatever opened them, their policy and notifications."""
