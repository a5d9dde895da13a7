"""Ollama-compatible API (``/api``): schemas, conversion to the pipeline, routes."""
