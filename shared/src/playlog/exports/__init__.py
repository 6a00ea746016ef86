"""Spotify "Download your data" exports: reading ZIPs, loading history, import jobs."""
