"""The ``playlog`` command."""
