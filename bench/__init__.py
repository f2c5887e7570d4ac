"""Benchmarks: quality and speed against the systems users would pick instead, latency, load,
scale, ingestion throughput (not part of the product's wheel)."""
