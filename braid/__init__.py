"""Braid's Python client package (`braid.client`)."""
