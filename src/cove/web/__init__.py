"""The web app: JSON routes under ``/web`` and the single-page app with its vendored libraries
under ``/`` and ``/static`` (no build step, nothing from a CDN)."""
