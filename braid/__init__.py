"""Braid's Python client: `braid.client` (HTTP: start, wait, cancel) and `braid.stream`
(follows executions live over WebSocket)."""
