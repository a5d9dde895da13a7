"""Anthropic-compatible Messages API (``/v1/messages``): schemas, conversion to the pipeline,
routes."""
