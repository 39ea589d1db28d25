"""Bridges from memsim device profiles to other crossbar simulators (optional extras)."""
