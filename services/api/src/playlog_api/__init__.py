"""Playlog API service."""
