"""Benchmarks: ``python benchmarks/api_read.py`` (see RESULTS.md)."""
