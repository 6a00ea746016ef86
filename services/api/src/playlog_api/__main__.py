"""``python -m playlog_api``: serve the api."""

from playlog.web.server import serve
from playlog_api.app import create_app
from playlog_api.settings import ApiSettings

if __name__ == "__main__":
    serve("api", ApiSettings, create_app, lambda s: (s.api_host, s.api_port))
