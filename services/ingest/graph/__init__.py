"""The Partner Center connection: alerts pulled from Microsoft Graph, responses written back (see docs/graph.md)."""
