"""Benchmark scripts, run by hand (`python -m tests.benchmarks.bench_…`), never by pytest."""
