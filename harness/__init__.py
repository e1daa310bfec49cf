"""What stands in for the world, for the tests, the operator commands and the benchmarks:
the mock engine and its SDK adapter, the update model and its provider facts, local servers and rigs."""
