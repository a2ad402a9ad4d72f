"""gpt4all-rag: the GPT4All Python SDK on a current llama.cpp, with LocalDocs on ChromaDB."""
