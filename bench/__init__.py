"""Benchmarks: scripts that print JSON. Never imported by the app or asserted on in tests."""
