"""The benchmarks whose figures the docs cite: `python -m bench.<name> --help`."""
