"""``gpt4all-rag serve``: an OpenAI-compatible server with LocalDocs (see :mod:`.app`).

The server maps HTTP onto the chat core and has no engine logic of its own:

* :mod:`.guards`: what a request passes first (read deadline, Host, API key, body size, text);
* :mod:`.schemas`: OpenAI's request models; :mod:`.pool`: the models and collections and their
  admission; :mod:`.serving`: how a request's work runs (threads, leaving clients, streams,
  errors, LocalDocs retrieval);
* the APIs: :mod:`.app` (OpenAI's chat, completions, embeddings, LocalDocs search, tokens),
  :mod:`.responses` (OpenAI's Responses with ``file_search``), :mod:`.vector_stores` (files and
  vector stores), :mod:`.anthropic` (Anthropic's Messages), :mod:`.mcp` (LocalDocs for agents),
  :mod:`.metrics` (Prometheus).
"""

from .app import create_app
from .pool import ServerConfig

__all__ = ["ServerConfig", "create_app"]
