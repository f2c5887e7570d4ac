"""Evaluation datasets, metrics, runner and benchmarks."""
