"""Kernel helpers for the vendor clients that several packages' adapters share."""
