"""The API's authentication: the embedded issuer, token verification (expired, forged, alg none,
HMAC with the public key, wrong audience/issuer, not yet valid), external JWKS, rate limits, CORS."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from cardiogate.cloud.api.settings import ApiAuthSettings
from cardiogate.cloud.api.tokens import AuthError, Issuer, TokenVerifier, load_or_create_key
from cardiogate.cloud.api.users import User, UserError, add_user, set_disabled
from cardiogate.core.metrics import sample_value
from tests.integration.api_testkit import PASSWORD, Seeded, api_settings, client_for, database, gql, login, seed

pytestmark = [pytest.mark.api, pytest.mark.timeout(120)]

QUERY = "{ sites { siteId } }"


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    with database("sqlite", tmp_path) as engine:
        yield seed(engine)


@pytest.fixture
def client(seeded: Seeded, tmp_path: Path) -> Iterator[TestClient]:
    with client_for(seeded.engine, api_settings(tmp_path)) as c:
        yield c


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "admin", "role": "admin", "sites": [], "iss": "cardiogate", "aud": "cardiogate-api",
            "iat": now, "nbf": now, "exp": now + 600, "jti": "x", **over}


def _kid(client: TestClient) -> str:
    kid: str = client.get("/auth/jwks.json").json()["keys"][0]["kid"]
    return kid


def _refused(client: TestClient, token: str, reason: str) -> None:
    before = sample_value("api_refusals_total", {"reason": reason}) or 0.0
    response = gql(client, token, QUERY)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert (sample_value("api_refusals_total", {"reason": reason}) or 0.0) == before + 1


def test_login_issues_a_short_lived_eddsa_token_verifiable_with_the_published_key(client: TestClient) -> None:
    response = client.post("/auth/token", json={"username": "nurse3", "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    token = body["access_token"]
    header = jwt.get_unverified_header(token)
    jwks = client.get("/auth/jwks.json").json()
    (key,) = jwks["keys"]
    assert header["alg"] == "EdDSA" and header["kid"] == key["kid"] and key["kty"] == "OKP" and "d" not in key
    claims = jwt.decode(token, jwt.PyJWK(key).key, algorithms=["EdDSA"], audience="cardiogate-api")
    assert claims["sub"] == "nurse3" and claims["role"] == "nurse" and claims["sites"] == ["ward-3"]
    assert claims["iss"] == "cardiogate" and claims["exp"] - claims["iat"] == 900 and claims["jti"]
    assert gql(client, token, QUERY).json()["data"]["sites"] == [{"siteId": "ward-3"}]


def test_wrong_password_unknown_and_disabled_users_are_refused(client: TestClient, seeded: Seeded) -> None:
    for username, password in (("nurse3", "wrong password!!"), ("nobody", PASSWORD)):
        response = client.post("/auth/token", json={"username": username, "password": password})
        assert response.status_code == 401 and "wrong password" in response.json()["detail"]
    set_disabled(seeded.engine, "nurse4")
    assert client.post("/auth/token", json={"username": "nurse4", "password": PASSWORD}).status_code == 401


def test_missing_garbage_expired_forged_none_hmac_audience_issuer_and_future_tokens_are_refused(
        client: TestClient) -> None:
    kid = _kid(client)
    assert gql(client, None, QUERY).status_code == 401
    _refused(client, "not-a-token", "malformed")
    key = load_or_create_key(Path(client.app.state.services.settings.auth.issuer_key))  # type: ignore[attr-defined]

    def sign(claims: dict[str, Any]) -> str:
        return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid})

    assert gql(client, sign(_claims()), QUERY).status_code == 200  # the control: a good token passes
    _refused(client, sign(_claims(exp=int(time.time()) - 120)), "expired")
    _refused(client, jwt.encode(_claims(), Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": kid}),
             "signature")
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
    _refused(client, f"{header}.{_b64(json.dumps(_claims()).encode())}.", "algorithm")
    # HS256 keyed with the issuer's public key (the classic algorithm confusion)
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    signing_input = f"{_b64(json.dumps({'alg': 'HS256', 'kid': kid}).encode())}.{_b64(json.dumps(_claims()).encode())}"
    mac = _b64(hmac.new(public, signing_input.encode(), hashlib.sha256).digest())
    _refused(client, f"{signing_input}.{mac}", "algorithm")
    _refused(client, sign(_claims(aud="another-api")), "audience")
    _refused(client, sign(_claims(iss="someone-else")), "issuer")
    _refused(client, sign(_claims(nbf=int(time.time()) + 3600)), "not_yet_valid")
    _refused(client, sign(_claims(role="superuser")), "claims")
    _refused(client, jwt.encode(_claims(), Ed25519PrivateKey.generate(), algorithm="EdDSA",
                                headers={"kid": "unknown"}), "unknown_key")


def test_the_issuer_key_is_made_once_owner_only_and_reused(seeded: Seeded, tmp_path: Path) -> None:
    settings = api_settings(tmp_path)
    with client_for(seeded.engine, settings) as first:
        token = login(first, "admin")
    mode = stat.S_IMODE(os.stat(settings.auth.issuer_key).st_mode)
    assert mode == 0o600
    with client_for(seeded.engine, settings) as second:  # a restart keeps the key: old tokens stay valid
        assert gql(second, token, QUERY).status_code == 200


async def test_external_jwks_rs256_and_es256_accepted_wrong_kid_and_bad_algorithm_refused() -> None:
    settings = ApiAuthSettings(issuer="https://idp.example", audience="cardiogate-api")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    fetches = 0

    async def source() -> Mapping[str, Any]:
        nonlocal fetches
        fetches += 1
        return {"keys": [
            {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key())), "kid": "r1", "use": "sig"},
            {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key())), "kid": "e1"},
        ]}

    verifier = TokenVerifier(settings, source)
    claims = _claims(iss="https://idp.example", sub="dr-who", role="clinician", sites=["ward-3"])
    p = await verifier.verify(jwt.encode(claims, rsa_key, algorithm="RS256", headers={"kid": "r1"}))
    assert (p.subject, p.role, p.sites) == ("dr-who", "clinician", frozenset({"ward-3"}))
    assert (await verifier.verify(jwt.encode(claims, ec_key, algorithm="ES256", headers={"kid": "e1"}))).role
    assert fetches == 1  # cached
    with pytest.raises(AuthError) as refused:  # RS512 is not on the allowlist
        await verifier.verify(jwt.encode(claims, rsa_key, algorithm="RS512", headers={"kid": "r1"}))
    assert refused.value.reason == "algorithm"
    with pytest.raises(AuthError) as refused:  # ES256 named, but the kid is the RSA key
        await verifier.verify(jwt.encode(claims, ec_key, algorithm="ES256", headers={"kid": "r1"}))
    assert refused.value.reason == "algorithm"
    with pytest.raises(AuthError) as refused:
        await verifier.verify(jwt.encode(claims, rsa_key, algorithm="RS256", headers={"kid": "zz"}))
    assert refused.value.reason == "unknown_key"


def test_embedded_issuer_tokens_carry_every_claim(tmp_path: Path) -> None:
    settings = ApiAuthSettings(issuer_key=tmp_path / "k.pem", token_ttl_s=60)
    issuer = Issuer(load_or_create_key(settings.issuer_key), settings, clock=lambda: 1_000_000.0)
    token, ttl = issuer.issue(User("a", "operator", (), False))
    claims = jwt.decode(token, options={"verify_signature": False})
    assert ttl == 60 and set(claims) == {"sub", "role", "sites", "iss", "aud", "exp", "iat", "nbf", "jti"}
    assert claims["exp"] == 1_000_060


def test_rate_limit_per_subject(seeded: Seeded, tmp_path: Path) -> None:
    with client_for(seeded.engine, api_settings(tmp_path, rate_per_s=0.5, rate_burst_s=4.0)) as client:
        admin, nurse = login(client, "admin"), login(client, "nurse3")
        codes = [gql(client, admin, QUERY).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        assert gql(client, nurse, QUERY).status_code == 200  # another subject has its own bucket


def test_users_are_validated(seeded: Seeded) -> None:
    for args in (("Bad Name", PASSWORD, "nurse", ["ward-3"]), ("x", "short", "nurse", ["ward-3"]),
                 ("x", PASSWORD, "nurse", []), ("x", PASSWORD, "god", []), ("admin", PASSWORD, "admin", [])):
        with pytest.raises(UserError):
            add_user(seeded.engine, *args)


def test_cors_allows_only_the_configured_origin(seeded: Seeded, tmp_path: Path) -> None:
    with client_for(seeded.engine, api_settings(tmp_path, cors_origin="https://dash.example")) as client:
        ok = client.options("/graphql", headers={"Origin": "https://dash.example", "Access-Control-Request-Method":
                                                 "POST", "Access-Control-Request-Headers": "authorization"})
        assert ok.headers.get("access-control-allow-origin") == "https://dash.example"
        bad = client.options("/graphql", headers={"Origin": "https://evil.example",
                                                  "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in bad.headers
