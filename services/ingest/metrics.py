"""The write API's own metrics (the shared ones: ``shared/metrics.py``): its Microsoft Graph connector."""

from __future__ import annotations

from prometheus_client import Counter

# outcome: ok, throttled (Graph answered 429: the connection or write-back waits its Retry-After),
# error (anything else: Graph away or refusing, credentials that do not open, the database away mid-poll).
GRAPH_POLLS = Counter("csp_graph_polls_total", "Microsoft Graph alert polls.", ["outcome"])
GRAPH_WRITEBACKS = Counter("csp_graph_writebacks_total", "Status write-backs to Microsoft Graph.", ["outcome"])
