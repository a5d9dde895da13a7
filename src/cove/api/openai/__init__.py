"""OpenAI-compatible API (``/v1``): schemas, conversion to the pipeline, routes."""
