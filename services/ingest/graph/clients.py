"""One Graph client per connection, kept while the connection is unchanged: its token is cached in it."""

from __future__ import annotations

import httpx

from services.ingest.graph.client import GraphClient
from services.ingest.graph.credentials import from_sealable
from shared.sealed import unseal


class GraphClients:
    """Clients by tenant; a connection replaced (a new generation: a rotated secret) gets a new one."""

    def __init__(self, settings, http: httpx.AsyncClient) -> None:
        self._settings, self._http = settings, http
        self._clients: dict[str, tuple[int, GraphClient]] = {}

    def for_credentials(
        self, tenant_id: str, generation: int, directory_id: str, client_id: str, sealed_credentials: str
    ) -> GraphClient:
        known = self._clients.get(tenant_id)
        if known is not None and known[0] == generation:
            return known[1]
        credentials = from_sealable(unseal(sealed_credentials, self._settings.sealing_key_list))
        client = GraphClient(
            credentials,
            graph_base_url=self._settings.graph_base_url,
            login_base_url=self._settings.graph_login_base_url,
            http=self._http,
        )
        self._clients[tenant_id] = (generation, client)
        return client
