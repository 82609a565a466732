"""``csp-triage``, the operator's command line: a client of the write API (8081) and the read API (8082).

It imports nothing of ``services/``: it speaks to the APIs over HTTP with a key, as any client does
(docs/cli.md).
"""
