"""Cove: a private, local AI assistant."""

__version__ = "0.1.0"
