"""``PUT | GET | DELETE /connections/graph`` of the write API: the tenant's Partner Center connection
(#12, docs/graph.md).

A connection is the app registration the write API signs in to Microsoft Graph with: a directory
(tenant) id, an application (client) id, and either a client secret or a certificate (one PEM with the
private key and the certificate). The secret is sealed at rest under ``SEALING_KEYS`` and never
returned; ``GET`` shows the connection's state instead (polls, last error, alerts seen, write-backs
pending and failed). Each creation, replacement and deletion is an audit entry (``GET /audit``) in the
change's transaction. A replacement (a rotated secret) is polled at once; deleting a connection stops
its polls and write-backs, and a new one resumes the write-backs still pending.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Response
from pydantic import Field

from services.ingest.deps import CallerDep, PoolDep, SettingsDep, wake_relay_after_write
from services.ingest.graph import store
from services.ingest.graph.credentials import CertificateInvalid, GraphCredentials, certificate_thumbprint, to_sealable
from services.ingest.graph.domain import DIRECTORY_ID_MAX_LENGTH, DIRECTORY_ID_PATTERN, GUID_PATTERN, CredentialType
from shared.auth import AuditActor, Permission, authorize
from shared.http import Problem, TenantIdPath
from shared.sealed import seal
from shared.wire import OptionalUtcDateTime, UtcDateTime, WireModel

router = APIRouter(prefix="/v1/tenants/{tenant_id}", tags=["connections"],
                   dependencies=[Depends(wake_relay_after_write)])

PATH = "/connections/graph"


class GraphConnectionIn(WireModel):
    directory_id: str = Field(
        max_length=DIRECTORY_ID_MAX_LENGTH,
        pattern=DIRECTORY_ID_PATTERN,
        description="The Entra directory (tenant) id the app is registered in: a GUID, or one of its domains "
        "(`contoso.onmicrosoft.com`).",
    )
    client_id: str = Field(pattern=GUID_PATTERN, description="The application (client) id: a GUID.")
    client_secret: str | None = Field(
        None, min_length=1, max_length=1024,
        description="The app's client secret (its value, not its id). Give this or `certificate`; never returned.",
    )
    certificate: str | None = Field(
        None, min_length=1, max_length=65_536,
        description="PEM holding the RSA private key (unencrypted) and the certificate uploaded to the app "
        "registration. Give this or `clientSecret`; never returned.",
    )
    enabled: bool = Field(True, description="Poll Partner Center and write responses back (false: paused).")


class PollError(WireModel):
    message: str = Field(description="What failed, as Graph or the identity platform said it.")
    date_time: UtcDateTime = Field(description="When it failed.")


class GraphConnectionOut(WireModel):
    directory_id: str = Field(description="The Entra directory (tenant) id or domain.")
    client_id: str = Field(description="The application (client) id.")
    credential_type: CredentialType = Field(description="How the app signs in; its secret is never returned.")
    certificate_thumbprint: str | None = Field(
        description="SHA-1 thumbprint of the certificate (upper-case hex, as Entra shows it); null with a "
        "client secret."
    )
    enabled: bool = Field(description="Whether Partner Center is polled and responses are written back.")
    created_date_time: UtcDateTime
    updated_date_time: UtcDateTime
    last_poll_date_time: OptionalUtcDateTime = Field(description="When the last poll began; null before the first.")
    last_successful_poll_date_time: OptionalUtcDateTime = Field(
        description="When the last poll that read every page ended; null before the first."
    )
    next_poll_date_time: OptionalUtcDateTime = Field(description="When the next poll is due; null while disabled.")
    last_error: PollError | None = Field(
        description="Why the last poll failed, while the connection fails; null once a poll succeeds."
    )
    alerts_seen: int = Field(description="Alerts of the tenant that came from Partner Center.")
    last_poll_alert_count: int = Field(description="How many alerts the last finished poll read.")
    write_backs_pending: int = Field(description="Responses waiting to be written to Partner Center (retried).")
    write_backs_failed: int = Field(
        description="Responses Partner Center refused for good (each alert's sync state says why)."
    )


def _view(state: store.ConnectionState) -> GraphConnectionOut:
    return GraphConnectionOut(
        directory_id=state.directory_id,
        client_id=state.client_id,
        credential_type=CredentialType(state.credential_type),
        certificate_thumbprint=state.certificate_thumbprint,
        enabled=state.enabled,
        created_date_time=state.created_at,
        updated_date_time=state.updated_at,
        last_poll_date_time=state.last_poll_at,
        last_successful_poll_date_time=state.last_success_at,
        next_poll_date_time=state.next_poll_at if state.enabled else None,
        last_error=PollError(message=state.last_error, date_time=state.last_error_at)
        if state.last_error and state.last_error_at else None,
        alerts_seen=state.alerts_seen,
        last_poll_alert_count=state.last_poll_alerts,
        write_backs_pending=state.writebacks_pending,
        write_backs_failed=state.writebacks_failed,
    )


def _invalid(field: str, message: str, *, also: str | None = None) -> Problem:
    errors = [{"field": name, "message": message} for name in (field, also) if name]
    return Problem(422, "Invalid request", f"{field}: {message}", errors=errors)


def _credentials(body: GraphConnectionIn) -> tuple[GraphCredentials, str | None]:
    """The credentials of ``body`` and the certificate's thumbprint; a 422 naming the field if unusable."""
    if (body.client_secret is None) == (body.certificate is None):
        raise _invalid("clientSecret", "give exactly one of clientSecret and certificate", also="certificate")
    thumbprint = None
    if body.certificate is not None:
        try:
            thumbprint = certificate_thumbprint(body.certificate, now=datetime.now(UTC))
        except CertificateInvalid as exc:
            raise _invalid("certificate", str(exc)) from None
    credentials = GraphCredentials(directory_id=body.directory_id, client_id=body.client_id,
                                   client_secret=body.client_secret, certificate_pem=body.certificate)
    return credentials, thumbprint


async def _current(pool, tenant_id: str) -> store.ConnectionState:
    state = await store.get_connection(pool, tenant_id)
    if state is None:
        raise Problem(404, "Not found", f"no Graph connection for tenant {tenant_id}")
    return state


@router.put(
    PATH,
    summary="Connect the tenant to Partner Center (Microsoft Graph), or replace its connection",
    response_model=GraphConnectionOut,
    responses={201: {"description": "Created", "model": GraphConnectionOut}, 200: {"description": "Replaced"}},
)
async def put_connection(
    tenant_id: TenantIdPath,
    body: GraphConnectionIn,
    caller: CallerDep,
    pool: PoolDep,
    settings: SettingsDep,
    response: Response,
) -> GraphConnectionOut:
    authorize(caller, Permission.manage, tenant_id)
    credentials, thumbprint = _credentials(body)
    credential_type = CredentialType.certificate if thumbprint else CredentialType.client_secret
    created = await store.put_connection(
        pool, tenant_id,
        directory_id=body.directory_id, client_id=body.client_id, credential_type=credential_type.value,
        sealed_credentials=seal(to_sealable(credentials), settings.sealing_key_list),
        certificate_thumbprint=thumbprint, enabled=body.enabled, actor=AuditActor.of(caller),
    )
    response.status_code = 201 if created else 200
    return _view(await _current(pool, tenant_id))  # (a DELETE in between: 404, as it would be now)


@router.get(PATH, response_model=GraphConnectionOut, responses={404: {"description": "The tenant has no connection"}},
            summary="The tenant's Partner Center connection and its state (never its secret)")
async def get_connection(tenant_id: TenantIdPath, caller: CallerDep, pool: PoolDep) -> GraphConnectionOut:
    authorize(caller, Permission.read, tenant_id)
    return _view(await _current(pool, tenant_id))


@router.delete(PATH, status_code=204, responses={404: {"description": "The tenant has no connection"}},
               summary="Disconnect the tenant from Partner Center")
async def delete_connection(tenant_id: TenantIdPath, caller: CallerDep, pool: PoolDep) -> Response:
    authorize(caller, Permission.manage, tenant_id)
    if not await store.delete_connection(pool, tenant_id, actor=AuditActor.of(caller)):
        raise Problem(404, "Not found", f"no Graph connection for tenant {tenant_id}")
    return Response(status_code=204)
