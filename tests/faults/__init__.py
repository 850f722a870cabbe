"""Fault and soak tests: real `mcp-service serve` processes on loopback, put under load
(tests/support/load.py) while Redis dies or stalls, the IdP goes away and rotates its keys, junk
tokens flood in, replicas restart behind nginx, or a soak runs.

Each is bounded in time; its bounds on latency are generous "nothing hangs" limits for a shared
2-core machine, never throughput claims. The soak runs SOAK_SECONDS (default 10):

    SOAK_SECONDS=60 uv run pytest tests/faults/test_soak.py
"""
