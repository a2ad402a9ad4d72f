"""``gpt4all-rag serve``: an OpenAI-compatible server with LocalDocs (see :mod:`.app`).

The server maps HTTP onto the chat core and has no engine logic of its own: :mod:`.schemas`
holds the request models, :mod:`.pool` the models and collections, :mod:`.app` the routes.
"""

from .app import create_app
from .pool import ServerConfig

__all__ = ["ServerConfig", "create_app"]
