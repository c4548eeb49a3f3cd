"""Signed notifications to client apps: an outbox written with the status change, sent by jobs."""
