"""Logs, metrics, health and readiness: in process and as real `mcp-service serve` processes,
scraped by a real Prometheus where it is installed."""
