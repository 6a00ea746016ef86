"""``python -m playlog_frontend``: serve the dashboard."""

from playlog.web.server import serve
from playlog_frontend.app import create_app
from playlog_frontend.settings import FrontendSettings

if __name__ == "__main__":
    serve("frontend", FrontendSettings, create_app, lambda s: (s.frontend_host, s.frontend_port))
