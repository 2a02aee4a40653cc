"""Webhook adapter: received messages and events pushed to a case-system URL."""
