"""Feature modules built on the core (nothing in the core imports them)."""
