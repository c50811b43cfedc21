"""Braid's Python client side (`braid.stream` follows executions live)."""
