"""Spotify: typed response models, the Web API client, and a faithful stand-in server."""
