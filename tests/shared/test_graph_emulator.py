"""The Graph emulator the Partner Center tests rely on, checked against the documented contract with
plain HTTP requests to the real server (no infrastructure)."""

from __future__ import annotations

import base64
import hashlib
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.support.graph_emulator import GraphEmulator, make_certificate, run_graph_emulator

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SEVEN_DIGITS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}Z$")


@pytest.fixture(scope="module")
def emulator() -> Iterator[GraphEmulator]:
    yield from run_graph_emulator()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture
def directory(emulator: GraphEmulator) -> str:
    """A directory of this test's own, with an app signing in by secret."""
    directory_id = str(uuid.uuid4())
    emulator.register_app(directory_id, "app-" + directory_id, secret="the secret")
    return directory_id


def secret_form(client_id: str, secret: str) -> dict[str, str]:
    return {"client_id": client_id, "client_secret": secret, "scope": GRAPH_SCOPE,
            "grant_type": "client_credentials"}


def sign_in(http: httpx.Client, emulator: GraphEmulator, directory_id: str) -> dict[str, str]:
    """Authorization headers for the directory's app (registered by the ``directory`` fixture)."""
    response = http.post(emulator.token_url(directory_id), data=secret_form("app-" + directory_id, "the secret"))
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def thumbprint(certificate_pem: str, algorithm: str) -> str:
    der = x509.load_pem_x509_certificate(certificate_pem.encode()).public_bytes(serialization.Encoding.DER)
    return base64.urlsafe_b64encode(hashlib.new(algorithm, der).digest()).rstrip(b"=").decode()


def assertion(private_pem: str, certificate_pem: str, *, audience: str, client_id: str, alg: str = "RS256",
              header: dict | None = None, **claims) -> str:
    now = int(time.time())
    header = header if header is not None else {"x5t": thumbprint(certificate_pem, "sha1")}
    payload = {"aud": audience, "iss": client_id, "sub": client_id, "jti": str(uuid.uuid4()),
               "nbf": now, "iat": now, "exp": now + 600, **claims}
    return jwt.encode({"alg": alg, "typ": "JWT", **header}, payload, RSAKey.import_key(private_pem),
                      algorithms=[alg])


def assertion_form(client_id: str, signed: str) -> dict[str, str]:
    return {"client_id": client_id, "client_assertion_type": JWT_BEARER, "client_assertion": signed,
            "scope": GRAPH_SCOPE, "grant_type": "client_credentials"}


def sign_in_error(response: httpx.Response, status: int, error: str, code: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    assert body["trace_id"] and body["correlation_id"] and body["timestamp"]


def graph_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert set(error["innerError"]) >= {"date", "request-id", "client-request-id"}
    return error["message"]


def list_all(http: httpx.Client, url: str, headers: dict[str, str], **params) -> list[dict]:
    """Every page of a listing, following @odata.nextLink."""
    pages, response = [], http.get(url, headers=headers, params=params or None)
    while True:
        assert response.status_code == 200, response.text
        pages.append(response.json())
        link = response.json().get("@odata.nextLink")
        if link is None:
            return pages
        response = http.get(link, headers=headers)


# --- the token endpoint ---------------------------------------------------------------------------


def test_a_client_secret_gets_a_bearer_token_for_graph(emulator, http, directory):
    response = http.post(emulator.token_url(directory), data=secret_form("app-" + directory, "the secret"))

    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == body["ext_expires_in"] == 3599
    graph = http.get(emulator.alerts_url, headers={"Authorization": f"Bearer {body['access_token']}"})
    assert graph.status_code == 200 and graph.json()["value"] == []
    assert emulator.token_requests(directory) == 1


def test_a_wrong_secret_is_an_invalid_client_and_gets_no_token(emulator, http, directory):
    response = http.post(emulator.token_url(directory), data=secret_form("app-" + directory, "not it"))

    sign_in_error(response, 401, "invalid_client", 7000215)
    assert emulator.token_requests(directory) == 0


def test_sign_in_refuses_unknown_tenants_unknown_apps_and_incomplete_requests(emulator, http, directory):
    client_id = "app-" + directory
    sign_in_error(http.post(emulator.token_url(str(uuid.uuid4())), data=secret_form(client_id, "the secret")),
                  400, "invalid_request", 90002)
    sign_in_error(http.post(emulator.token_url(directory), data=secret_form(str(uuid.uuid4()), "the secret")),
                  400, "unauthorized_client", 700016)
    sign_in_error(http.post(emulator.token_url(directory), data={**secret_form(client_id, "the secret"),
                                                                 "scope": "https://graph.microsoft.com/User.Read"}),
                  400, "invalid_scope", 1002012)
    sign_in_error(http.post(emulator.token_url(directory), data={**secret_form(client_id, "the secret"),
                                                                 "grant_type": "password"}),
                  400, "unsupported_grant_type", 70003)
    form = secret_form(client_id, "the secret")
    del form["client_secret"]
    sign_in_error(http.post(emulator.token_url(directory), data=form), 401, "invalid_client", 7000216)
    # The form must be form-encoded: a JSON body has no grant_type for the identity platform.
    sign_in_error(http.post(emulator.token_url(directory), json=secret_form(client_id, "the secret")),
                  400, "invalid_request", 900144)
    assert emulator.token_requests(directory) == 0


def test_a_certificate_assertion_gets_a_token_with_either_thumbprint(emulator, http):
    directory_id, client_id = str(uuid.uuid4()), str(uuid.uuid4())
    private_pem, certificate_pem = make_certificate()
    emulator.register_app(directory_id, client_id, certificate_pem=certificate_pem)
    token_url = emulator.token_url(directory_id)

    by_sha1 = assertion(private_pem, certificate_pem, audience=token_url, client_id=client_id)
    by_sha256 = assertion(private_pem, certificate_pem, audience=token_url, client_id=client_id, alg="PS256",
                          header={"x5t#S256": thumbprint(certificate_pem, "sha256")})

    for signed in (by_sha1, by_sha256):
        response = http.post(token_url, data=assertion_form(client_id, signed))
        assert response.status_code == 200, response.text
        assert response.json()["token_type"] == "Bearer"
    assert emulator.token_requests(directory_id) == 2


def test_a_certificate_assertion_is_verified_like_the_identity_platform_does(emulator, http):
    directory_id, client_id = str(uuid.uuid4()), str(uuid.uuid4())
    private_pem, certificate_pem = make_certificate()
    other_private_pem, other_certificate_pem = make_certificate()
    emulator.register_app(directory_id, client_id, certificate_pem=certificate_pem)
    token_url = emulator.token_url(directory_id)

    def refused(signed: str, status: int, error: str, code: int) -> None:
        sign_in_error(http.post(token_url, data=assertion_form(client_id, signed)), status, error, code)

    # Signed by another key while naming the registered certificate: the signature does not verify.
    refused(assertion(other_private_pem, certificate_pem, audience=token_url, client_id=client_id),
            401, "invalid_client", 700027)
    # A certificate the app does not have.
    refused(assertion(other_private_pem, other_certificate_pem, audience=token_url, client_id=client_id),
            401, "invalid_client", 700027)
    refused(assertion(private_pem, certificate_pem, audience="https://login.microsoftonline.com/x/oauth2/v2.0/token",
                      client_id=client_id), 401, "invalid_client", 700212)
    refused(assertion(private_pem, certificate_pem, audience=token_url, client_id=client_id, iss="someone-else"),
            401, "invalid_client", 700021)
    refused(assertion(private_pem, certificate_pem, audience=token_url, client_id=client_id,
                      exp=int(time.time()) - 5), 401, "invalid_client", 700024)
    refused("not.a.jwt", 400, "invalid_request", 50027)
    # An app with a certificate only has no secret to match.
    sign_in_error(http.post(token_url, data=secret_form(client_id, "guess")), 401, "invalid_client", 7000215)
    assert emulator.token_requests(directory_id) == 0


def test_an_expired_certificate_is_refused(emulator, http):
    directory_id, client_id = str(uuid.uuid4()), str(uuid.uuid4())
    now = datetime.now(UTC)
    private_pem, certificate_pem = make_certificate(not_valid_before=now - timedelta(days=30),
                                                    not_valid_after=now - timedelta(days=1))
    emulator.register_app(directory_id, client_id, certificate_pem=certificate_pem)
    token_url = emulator.token_url(directory_id)

    response = http.post(token_url, data=assertion_form(
        client_id, assertion(private_pem, certificate_pem, audience=token_url, client_id=client_id)))

    sign_in_error(response, 401, "invalid_client", 700027)
    assert "expired" in response.json()["error_description"]


def test_only_rsa_certificates_can_be_registered(emulator):
    _, certificate_pem = make_certificate(key_type="ec")

    with pytest.raises(ValueError, match="RSA"):
        emulator.register_app(str(uuid.uuid4()), str(uuid.uuid4()), certificate_pem=certificate_pem)


# --- Graph: authentication ------------------------------------------------------------------------


def test_graph_refuses_a_request_without_a_valid_bearer_token(emulator, http):
    message = graph_error(http.get(emulator.alerts_url), 401, "InvalidAuthenticationToken")
    assert message == "Access token is empty."
    graph_error(http.get(emulator.alerts_url, headers={"Authorization": "Bearer made-up"}),
                401, "InvalidAuthenticationToken")
    response = http.get(emulator.alerts_url, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    graph_error(response, 401, "InvalidAuthenticationToken")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_expired_tokens_get_401_and_a_new_token_works(emulator, http, directory):
    headers = sign_in(http, emulator, directory)
    assert http.get(emulator.alerts_url, headers=headers).status_code == 200

    emulator.expire_tokens(directory)

    message = graph_error(http.get(emulator.alerts_url, headers=headers), 401, "InvalidAuthenticationToken")
    assert message == "Access token has expired or is not yet valid."
    assert http.get(emulator.alerts_url, headers=sign_in(http, emulator, directory)).status_code == 200
    assert [r["status"] for r in emulator.requests(directory)] == [200, 401, 200]


def test_a_token_expires_after_its_lifetime(emulator, http):
    directory_id, client_id = str(uuid.uuid4()), str(uuid.uuid4())
    emulator.register_app(directory_id, client_id, secret="s", token_lifetime_seconds=2)
    body = http.post(emulator.token_url(directory_id), data=secret_form(client_id, "s")).json()
    assert body["expires_in"] == 2
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert http.get(emulator.alerts_url, headers=headers).status_code == 200

    time.sleep(2.2)

    graph_error(http.get(emulator.alerts_url, headers=headers), 401, "InvalidAuthenticationToken")


def test_directories_are_isolated(emulator, http, directory):
    other = str(uuid.uuid4())
    emulator.register_app(other, "app-" + other, secret="the secret")
    mine = emulator.add_alert(directory)
    theirs = emulator.add_alert(other)
    emulator.throttle(other, times=5)
    headers = sign_in(http, emulator, directory)

    listed = http.get(emulator.alerts_url, headers=headers).json()["value"]
    assert [a["id"] for a in listed] == [mine["id"]]
    graph_error(http.get(f"{emulator.alerts_url}/{theirs['id']}", headers=headers), 404, "ResourceNotFound")
    assert emulator.requests(other) == []


# --- Graph: listing -------------------------------------------------------------------------------


def test_a_listing_follows_next_link_across_three_pages_in_insertion_order(emulator, http, directory):
    ids = [emulator.add_alert(directory, displayName=f"alert {n}")["id"] for n in range(5)]
    emulator.set_page_size(directory, 2)
    headers = sign_in(http, emulator, directory)

    pages = list_all(http, emulator.alerts_url, headers)

    assert [[a["id"] for a in page["value"]] for page in pages] == [ids[0:2], ids[2:4], ids[4:5]]
    for page in pages[:-1]:
        assert page["@odata.nextLink"].startswith(emulator.alerts_url + "?$skiptoken=")
    assert "@odata.nextLink" not in pages[-1]
    assert pages[0]["@odata.context"] == f"{emulator.base_url}/beta/$metadata#security/partner/securityAlerts"
    assert [r["query"] for r in emulator.requests(directory)][1:] == [
        {"$skiptoken": page["@odata.nextLink"].split("$skiptoken=")[1]} for page in pages[:-1]]


def test_an_alert_added_during_a_listing_is_never_listed_twice(emulator, http, directory):
    first = [emulator.add_alert(directory)["id"] for _ in range(3)]
    emulator.set_page_size(directory, 2)
    headers = sign_in(http, emulator, directory)
    page = http.get(emulator.alerts_url, headers=headers).json()

    added = emulator.add_alert(directory)["id"]
    rest = list_all(http, page["@odata.nextLink"], headers)

    listed = [a["id"] for a in page["value"]] + [a["id"] for p in rest for a in p["value"]]
    assert sorted(listed) == sorted(first + [added])
    assert len(listed) == len(set(listed))
    assert [a["id"] for a in list_all(http, emulator.alerts_url, headers)[-1]["value"]][-1] == added


def test_top_lowers_the_page_size_and_count_counts_every_match(emulator, http, directory):
    ids = [emulator.add_alert(directory)["id"] for _ in range(3)]
    headers = sign_in(http, emulator, directory)

    pages = list_all(http, emulator.alerts_url, headers, **{"$top": "1", "$count": "true"})

    assert [[a["id"] for a in page["value"]] for page in pages] == [[i] for i in ids]
    assert all(page["@odata.count"] == 3 for page in pages)
    graph_error(http.get(emulator.alerts_url, headers=headers, params={"$top": "0"}), 400, "BadRequest")


def test_select_returns_only_the_named_properties(emulator, http, directory):
    alert = emulator.add_alert(directory)
    headers = sign_in(http, emulator, directory)

    listed = http.get(emulator.alerts_url, headers=headers, params={"$select": "id,status"}).json()
    one = http.get(f"{emulator.alerts_url}/{alert['id']}", headers=headers, params={"$select": "status"}).json()

    assert listed["value"] == [{"id": alert["id"], "status": "active"}]
    assert listed["@odata.context"].endswith("#security/partner/securityAlerts(id,status)")
    assert {k: v for k, v in one.items() if not k.startswith("@")} == {"status": "active"}
    graph_error(http.get(emulator.alerts_url, headers=headers, params={"$select": "nope"}), 400, "BadRequest")


def test_filter_compares_statuses_and_unquoted_datetimes(emulator, http, directory):
    old = emulator.add_alert(directory, detectedDateTime=datetime(2025, 12, 31, 23, 0, tzinfo=UTC))
    new_resolved = emulator.add_alert(directory, detectedDateTime="2026-01-02T00:00:00.1234567Z")
    emulator.change_in_partner_center(directory, new_resolved["id"], status="resolved", resolved_reason="fraud",
                                      at=datetime(2026, 1, 5, tzinfo=UTC))
    old_resolved = emulator.add_alert(directory)
    emulator.change_in_partner_center(directory, old_resolved["id"], status="resolved",
                                      at=datetime(2025, 6, 1, tzinfo=UTC))
    investigating = emulator.add_alert(directory, status="investigating")
    headers = sign_in(http, emulator, directory)

    def ids(expression: str) -> list[str]:
        return [a["id"] for page in list_all(http, emulator.alerts_url, headers, **{"$filter": expression})
                for a in page["value"]]

    assert ids("status eq 'active'") == [old["id"]]
    assert ids("status ne 'resolved'") == [old["id"], investigating["id"]]
    assert ids("detectedDateTime ge 2026-01-01T00:00:00Z") == [new_resolved["id"], old_resolved["id"],
                                                               investigating["id"]]
    assert ids("detectedDateTime lt 2026-01-02T00:00:00.1234567Z") == [old["id"]]
    assert ids("resolvedOnDateTime eq null") == [old["id"], investigating["id"]]
    # The connector's poll: every open alert and the recently resolved ones (null is never >=).
    assert ids("status ne 'resolved' or resolvedOnDateTime ge 2026-01-01T00:00:00Z") == [
        old["id"], new_resolved["id"], investigating["id"]]
    assert ids("(status eq 'resolved' and resolvedReason eq 'fraud') or status eq 'investigating'") == [
        new_resolved["id"], investigating["id"]]
    assert ids("not (status eq 'active')") == [new_resolved["id"], old_resolved["id"], investigating["id"]]
    assert ids("resolvedOnDateTime ge 2026-01-04T23:00:00-02:00") == []  # offsets are honoured


def test_a_filter_is_kept_across_pages(emulator, http, directory):
    active = [emulator.add_alert(directory)["id"] for _ in range(3)]
    for _ in range(3):
        emulator.add_alert(directory, status="resolved")
    emulator.set_page_size(directory, 2)
    headers = sign_in(http, emulator, directory)

    pages = list_all(http, emulator.alerts_url, headers, **{"$filter": "status eq 'active'"})

    assert [[a["id"] for a in page["value"]] for page in pages] == [active[0:2], active[2:3]]


@pytest.mark.parametrize("expression", [
    "startswith(displayName, 'A')",
    "nope eq 'x'",
    "status eq 'closed'",
    "detectedDateTime ge '2026-01-01T00:00:00Z'",
    "status eq",
    "status eq 'active' and",
    "(status eq 'active'",
    "activityLogs eq 'x'",
    "status has 'active'",
])
def test_a_filter_outside_the_supported_subset_is_a_bad_request(emulator, http, directory, expression):
    headers = sign_in(http, emulator, directory)

    response = http.get(emulator.alerts_url, headers=headers, params={"$filter": expression})

    graph_error(response, 400, "BadRequest")


def test_an_unknown_skiptoken_is_a_bad_request(emulator, http, directory):
    headers = sign_in(http, emulator, directory)

    response = http.get(emulator.alerts_url, headers=headers, params={"$skiptoken": "made-up"})

    graph_error(response, 400, "BadRequest")


# --- Graph: faults --------------------------------------------------------------------------------


def test_throttling_answers_429_with_retry_after_then_succeeds(emulator, http, directory):
    headers = sign_in(http, emulator, directory)
    emulator.throttle(directory, times=2, retry_after=3)

    first, second, third = (http.get(emulator.alerts_url, headers=headers) for _ in range(3))

    for throttled in (first, second):
        graph_error(throttled, 429, "TooManyRequests")
        assert throttled.headers["Retry-After"] == "3"
    assert third.status_code == 200
    assert [r["status"] for r in emulator.requests(directory)] == [429, 429, 200]


def test_a_directory_that_is_down_answers_503_to_sign_in_and_graph(emulator, http, directory):
    headers = sign_in(http, emulator, directory)
    other = str(uuid.uuid4())
    emulator.register_app(other, "app-" + other, secret="the secret")

    emulator.set_down(directory, True)

    down_sign_in = http.post(emulator.token_url(directory), data=secret_form("app-" + directory, "the secret"))
    sign_in_error(down_sign_in, 503, "temporarily_unavailable", 90033)
    assert down_sign_in.headers["Retry-After"] == "1"
    down_graph = http.get(emulator.alerts_url, headers=headers)
    graph_error(down_graph, 503, "ServiceUnavailable")
    assert down_graph.headers["Retry-After"] == "1"
    assert http.get(emulator.alerts_url, headers=sign_in(http, emulator, other)).status_code == 200

    emulator.set_down(directory, False)

    assert http.get(emulator.alerts_url, headers=headers).status_code == 200
    assert emulator.token_requests(directory) == 1


# --- Graph: one alert, and its update -------------------------------------------------------------


def test_an_added_alert_has_the_documented_shape(emulator, http, directory):
    stored = emulator.add_alert(directory, severity="low")
    headers = sign_in(http, emulator, directory)

    alert = http.get(f"{emulator.alerts_url}/{stored['id']}", headers=headers).json()

    assert alert["@odata.context"].endswith("#security/partner/securityAlerts/$entity")
    assert alert["status"] == "active" and alert["severity"] == "low"
    assert alert["isTest"] == "false"
    assert alert["resolvedReason"] is None and alert["catalogOfferId"] is None
    assert alert["activityLogs"] == []
    assert SEVEN_DIGITS.match(alert["detectedDateTime"])
    assert all(isinstance(v, str) for v in alert["additionalDetails"].values())
    assert {k: v for k, v in alert.items() if not k.startswith("@")} == emulator.alert(directory, stored["id"])


def test_an_unknown_alert_is_404_and_ids_are_path_segments(emulator, http, directory):
    odd = emulator.add_alert(directory, id="a/b c?d")
    headers = sign_in(http, emulator, directory)

    graph_error(http.get(f"{emulator.alerts_url}/{uuid.uuid4()}", headers=headers), 404, "ResourceNotFound")
    quoted = http.get(f"{emulator.alerts_url}/a%2Fb%20c%3Fd", headers=headers)
    assert quoted.status_code == 200 and quoted.json()["id"] == odd["id"]


def test_a_patch_changes_the_status_and_appends_an_activity_log(emulator, http, directory):
    stored = emulator.add_alert(directory)
    headers = sign_in(http, emulator, directory)
    url = f"{emulator.alerts_url}/{stored['id']}"

    response = http.patch(url, headers=headers, json={
        "@odata.type": "#microsoft.graph.partner.security.partnerSecurityAlert",
        "status": "resolved", "resolvedReason": "fraud"})

    assert response.status_code == 200, response.text
    alert = response.json()
    assert alert["status"] == "resolved" and alert["resolvedReason"] == "fraud"
    [log] = alert["activityLogs"]
    assert (log["statusFrom"], log["statusTo"], log["updatedBy"]) == ("active", "resolved", "app-" + directory)
    assert SEVEN_DIGITS.match(log["updatedDateTime"])
    assert alert["resolvedOnDateTime"] == log["updatedDateTime"]
    assert alert["resolvedBy"] == "app-" + directory
    assert http.get(url, headers=headers).json() == alert | {"@odata.context": alert["@odata.context"]}
    [patch] = emulator.patches(directory)
    assert patch["alertId"] == stored["id"]
    assert patch["body"] == {"status": "resolved", "resolvedReason": "fraud"}
    assert abs((datetime.now(UTC) - patch["at"]).total_seconds()) < 10

    reopened = http.patch(url, headers=headers, json={"status": "investigating"}).json()

    assert [(x["statusFrom"], x["statusTo"]) for x in reopened["activityLogs"]] == [
        ("active", "resolved"), ("resolved", "investigating")]
    assert reopened["resolvedOnDateTime"] is None and reopened["resolvedBy"] is None
    assert reopened["resolvedReason"] == "fraud"  # not sent, so kept
    assert len(emulator.patches(directory)) == 2


@pytest.mark.parametrize(("body", "named"), [
    ({"resolvedReason": "fraud"}, "status"),
    ({"status": "closed"}, "closed"),
    ({"status": "resolved", "resolvedReason": "bored"}, "bored"),
    ({"status": 3}, "status"),
    ({"status": "resolved", "severity": "low"}, "severity"),
    ({"status": "resolved", "comment": "done"}, "comment"),
    ({"status": "resolved", "@odata.type": "#microsoft.graph.user"}, "microsoft.graph.user"),
])
def test_a_patch_graph_cannot_apply_is_a_bad_request_naming_what_is_wrong(emulator, http, directory, body, named):
    stored = emulator.add_alert(directory)
    headers = sign_in(http, emulator, directory)

    response = http.patch(f"{emulator.alerts_url}/{stored['id']}", headers=headers, json=body)

    assert named in graph_error(response, 400, "BadRequest")
    assert emulator.alert(directory, stored["id"]) == stored
    assert emulator.patches(directory) == []


def test_a_patch_that_is_not_json_or_of_an_unknown_alert_is_refused(emulator, http, directory):
    stored = emulator.add_alert(directory)
    headers = sign_in(http, emulator, directory)

    not_json = http.patch(f"{emulator.alerts_url}/{stored['id']}", headers=headers, content=b"status=resolved")
    graph_error(not_json, 400, "BadRequest")
    unknown = http.patch(f"{emulator.alerts_url}/{uuid.uuid4()}", headers=headers, json={"status": "resolved"})
    graph_error(unknown, 404, "ResourceNotFound")
    assert emulator.patches(directory) == []


def test_refused_patches_change_nothing_until_accepted_again(emulator, http, directory):
    stored = emulator.add_alert(directory)
    headers = sign_in(http, emulator, directory)
    url = f"{emulator.alerts_url}/{stored['id']}"
    emulator.refuse_patches(directory)

    refused = http.patch(url, headers=headers, json={"status": "resolved"})

    assert graph_error(refused, 403, "Forbidden") == "Insufficient privileges to complete the operation."
    assert emulator.alert(directory, stored["id"])["status"] == "active"
    assert emulator.patches(directory) == []
    emulator.accept_patches(directory)
    assert http.patch(url, headers=headers, json={"status": "resolved"}).status_code == 200


def test_a_change_in_partner_center_is_logged_as_the_person_who_made_it(emulator, directory):
    stored = emulator.add_alert(directory)
    at = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)

    changed = emulator.change_in_partner_center(directory, stored["id"], status="resolved",
                                                resolved_reason="legitimate", by="dana@partner.example", at=at)

    assert changed["activityLogs"] == [{"statusFrom": "active", "statusTo": "resolved",
                                        "updatedBy": "dana@partner.example",
                                        "updatedDateTime": "2026-03-01T12:30:15.1234560Z"}]
    assert (changed["resolvedOnDateTime"], changed["resolvedBy"], changed["resolvedReason"]) == (
        "2026-03-01T12:30:15.1234560Z", "dana@partner.example", "legitimate")
    assert emulator.alert(directory, stored["id"]) == changed
    assert emulator.patches(directory) == []
