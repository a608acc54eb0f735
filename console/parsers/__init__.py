"""Parsers for benchmark and power logs people already have. Pure functions, no I/O."""
