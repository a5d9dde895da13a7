"""HTTP APIs: thin adapters over the chat pipeline."""
