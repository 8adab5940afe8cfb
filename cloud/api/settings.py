"""Settings of the API service (``[api]`` in the cloud TOML, ``CARDIOGATE_CLOUD__API__*``).

Defaults are safe for one machine: it listens on loopback, lets only its own origin call it
from a browser, and hides introspection unless ``development`` says otherwise.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from cardiogate.core.settings import StrictModel

# Public-key algorithms only: never "none", never HMAC (a public key must not become a shared secret).
ALLOWED_ALGORITHMS: tuple[str, ...] = ("EdDSA", "RS256", "ES256")


class ApiAuthSettings(StrictModel):
    """Who issues the tokens the API accepts: the embedded issuer (local users), or an external OIDC provider."""

    issuer: str = Field(default="cardiogate", min_length=1, description="the `iss` every accepted token carries")
    audience: str = Field(default="cardiogate-api", min_length=1, description="the `aud` every accepted token carries")
    jwks_url: str | None = Field(default=None, description="an external OIDC provider's JWKS; unset: the embedded "
                                                           "issuer signs and its key verifies")
    issuer_key: Path = Field(default=Path("pki/api-issuer.key"),
                             description="the embedded issuer's Ed25519 private key (PEM, 0600); made on first start")
    token_ttl_s: int = Field(default=900, ge=30, le=3600)
    algorithms: tuple[str, ...] = ALLOWED_ALGORITHMS
    jwks_cache_s: float = Field(default=300.0, ge=0, le=86400, description="how long a fetched JWKS is trusted")
    leeway_s: float = Field(default=30.0, ge=0, le=300, description="clock skew tolerated on exp/nbf/iat")

    @model_validator(mode="after")
    def _public_key_algorithms_only(self) -> ApiAuthSettings:
        bad = set(self.algorithms) - set(ALLOWED_ALGORITHMS)
        if bad or not self.algorithms:
            raise ValueError(f"algorithms must be a non-empty subset of {list(ALLOWED_ALGORITHMS)}, not {sorted(bad)}")
        return self


class CareSettings(StrictModel):
    """Care-team chat and the nutrition analysis (``[api.care]``)."""

    assistant: bool = Field(default=True, description="the automated chat assistant, answering from the patient's "
                                                      "own data with fixed rules (no outside model is called)")
    max_message_chars: int = Field(default=4000, ge=1, le=20_000, description="the longest chat message accepted")
    food_table: Path | None = Field(default=None, description="a food table built by `cardiogate care "
                                                              "build-food-table`; unset: the one shipped with "
                                                              "cardiogate")
    lab_max_age_days: int = Field(default=30, ge=1, le=3650, description="labs older than this are listed in the "
                                                                         "nutrition report as stale evidence and "
                                                                         "not judged")


class ApiSettings(StrictModel):
    listen: str = "127.0.0.1:8080"
    cors_origin: str | None = Field(default=None, description="the one browser origin allowed; default: the API's own")
    development: bool = Field(default=False, description="GraphQL introspection and the GraphiQL page")
    max_query_depth: int = Field(default=10, ge=2, le=50)
    max_aliases: int = Field(default=30, ge=1, le=1000)
    max_tokens: int = Field(default=2000, ge=100, le=100_000, description="the largest GraphQL document, in tokens")
    dashboard_dir: Path | None = Field(default=None, description="the built web dashboard served at `/` (its "
                                                                  "`dist` folder); unset: the repository's own "
                                                                  "dashboard/dist when it is there")
    rate_per_s: float = Field(default=20.0, ge=0, description="requests per second per token subject; 0 = unlimited")
    rate_burst_s: float = Field(default=5.0, gt=0, le=600, description="bucket size, in seconds of the rate")
    redis_url: str = "redis://127.0.0.1:6379/0"
    direct_ingest: bool = Field(default=False, description="phone-direct `ingestSmartwatchData` writes readings to "
                                                           "Kafka (`kafka.bootstrap`); off: it answers NOT_AVAILABLE")
    auth: ApiAuthSettings = ApiAuthSettings()
    care: CareSettings = CareSettings()

    @property
    def origin(self) -> str:
        return self.cors_origin or f"http://{self.listen}"
