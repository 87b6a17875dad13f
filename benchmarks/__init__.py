"""Benchmarks: run each as `python -m benchmarks.<name>`; results go to BENCHMARKS.md."""
