"""Benchmarks that print figures: run against a local mothership, never in the test suite."""
