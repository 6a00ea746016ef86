"""Playlog admin dashboard service."""
