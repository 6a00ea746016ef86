"""Every tool module, imported once so its tools are registered, and the catalog order."""

from playlog_api.history import (
    compare,
    coverage,
    discoveries,
    plays,
    podcasts,
    repeats,
    skips,
    summary,
    top,
    year_review,
)
from playlog_api.tools import ops, spotify_live

__all__ = [
    "compare",
    "coverage",
    "discoveries",
    "ops",
    "plays",
    "podcasts",
    "repeats",
    "skips",
    "spotify_live",
    "summary",
    "top",
    "year_review",
]

# The order clients list tools in: the overview first, then lists, patterns, ops.
ORDER = (
    "history_taste_summary",
    "history_top_artists",
    "history_top_tracks",
    "history_top_albums",
    "history_listening_heatmap",
    "history_repeat_rate",
    "history_coverage",
    "history_recent_plays",
    "history_search",
    "history_compare_periods",
    "history_discoveries",
    "history_skips",
    "history_podcasts",
    "history_year_in_review",
    "spotify_get_top",
    "spotify_search",
    "ops_sync_status",
    "ops_latest_job_runs",
    "ops_latest_import_jobs",
)
