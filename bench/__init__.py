"""Benchmarks of the store side of the project (run them, they are not tests)."""
