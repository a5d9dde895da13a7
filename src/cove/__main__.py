"""``python -m cove`` is the ``cove`` command."""

from cove.cli.main import main

main()
