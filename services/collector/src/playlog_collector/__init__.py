"""Playlog collector service."""
