"""Benchmarks (`make bench`): figures are printed and written to bench/results, never asserted."""
