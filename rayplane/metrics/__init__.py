"""Cluster metrics: figures scraped from Ray's Prometheus endpoints, kept as a bounded time
series (``docs/architecture.md``, "Cluster metrics")."""
