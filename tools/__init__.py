"""Developer tools run from the repository (``python -m tools.<name>``); no service imports them."""
