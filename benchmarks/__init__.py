"""Benchmarks of devin_async: ``python -m benchmarks`` (see README.md)."""
