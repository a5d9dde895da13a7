"""Model arena (issue 13)."""
def install(app): pass
