"""``python -m cli``: the same as ``csp-triage``."""

from cli.main import main

main()
