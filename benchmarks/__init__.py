"""Benchmarks: one script per measure, each printing figures and ratios against a baseline
measured in the same run. Run them with `make bench` or `python -m benchmarks.<name>`."""
