"""Benchmarks: ``python -m benchmarks.<name>`` prints ratios measured in one run (ours against a baseline)."""
