"""The ASGI application for servers: `uvicorn web.asgi:app`, with settings from the environment."""

from services.settings import Settings
from web.app import create_app

app = create_app(Settings.from_env())
