"""Model names and the registry of installed models."""
