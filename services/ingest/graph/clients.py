"""One Graph client per connection, kept while the connection is unchanged: its token is cached in it."""

from __future__ import annotations

import httpx
from cachetools import TTLCache

from services.ingest.graph.client import GraphClient
from services.ingest.graph.credentials import from_sealable
from shared.sealed import unseal

# A client (its token, its opened credentials) is dropped an hour after it was made, and any time the
# connection changes: a deleted connection's secret does not stay in memory for long.
CLIENT_TTL_SECONDS = 3600
MAX_CLIENTS = 10_000


class GraphClients:
    """Clients by tenant. The key includes the sealed credentials, which change with every ``PUT``
    (Fernet seals with a fresh IV): a replaced, or deleted and created again, connection gets a new
    client, never the previous one's token or directory."""

    def __init__(self, settings, http: httpx.AsyncClient) -> None:
        self._settings, self._http = settings, http
        self._clients: TTLCache[str, tuple[tuple[int, str], GraphClient]] = TTLCache(MAX_CLIENTS, CLIENT_TTL_SECONDS)

    def for_credentials(
        self, tenant_id: str, generation: int, directory_id: str, client_id: str, sealed_credentials: str
    ) -> GraphClient:
        """The tenant's client; raises ``SealBroken`` (no key opens the credentials) or ``ValueError``
        (they do not read): the caller records it as the connection's or the write-back's error."""
        version = (generation, sealed_credentials)
        known = self._clients.get(tenant_id)
        if known is not None and known[0] == version:
            return known[1]
        credentials = from_sealable(unseal(sealed_credentials, self._settings.sealing_key_list))
        client = GraphClient(
            credentials,
            graph_base_url=self._settings.graph_base_url,
            login_base_url=self._settings.graph_login_base_url,
            http=self._http,
        )
        self._clients[tenant_id] = (version, client)
        return client
