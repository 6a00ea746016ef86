"""Test support shared by every Playlog test suite (loaded as a pytest plugin)."""
