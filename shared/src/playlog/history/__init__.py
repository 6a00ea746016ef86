"""Listening history shared by the collector, the importer and the analytics."""
