"""Playlog shared package: settings, database models and migrations, crypto, the CLI."""

__version__ = "0.1.0"
