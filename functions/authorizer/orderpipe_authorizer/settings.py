"""Settings of the authorizer function, read from the environment once per process."""

from __future__ import annotations

from pydantic import Field

from orderpipe_common.per_process import per_process
from orderpipe_common.settings import FunctionSettings, load


class AuthorizerSettings(FunctionSettings):
    # The token issuer (`iss`), e.g. https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC or an
    # Okta/Auth0/Entra issuer URL. Tokens from any other issuer are refused.
    auth_issuer: str = Field(min_length=1)
    # The audience (`aud`) a token must name. None: not checked, for issuers whose access tokens carry
    # none (Cognito's); the producers table then binds a client to this API.
    auth_audience: str | None = None
    # Where the issuer publishes its signing keys; default: <issuer>/.well-known/jwks.json (Cognito,
    # Auth0). Okta: <issuer>/v1/keys; Entra: https://login.microsoftonline.com/<tenant>/discovery/v2.0/keys.
    auth_jwks_url: str | None = None
    # The claim naming the calling client (`sub`: the client id with the client-credentials grant).
    auth_principal_claim: str = "sub"
    # The claim listing the granted scopes (space-separated string or list: Okta and Entra use `scp`).
    auth_scope_claim: str = "scope"
    # Clock skew tolerated on exp/iat/nbf.
    auth_leeway_seconds: int = Field(default=30, ge=0, le=300)
    # How long fetched signing keys are reused; an unknown key id fetches them again at once.
    auth_jwks_cache_seconds: int = Field(default=3600, ge=60, le=86_400)
    # Each fetch of the signing keys waits at most this long, and never past the decision's deadline.
    auth_jwks_timeout_seconds: float = Field(default=1.5, gt=0, le=10)
    # How long a decision may take (and at most the function's timeout minus half a second): the
    # signing-key fetch (rare: cached) and the producer look-up fit in it. Past it the authorizer
    # fails, and API Gateway answers AUTHORIZER_FAILURE (503 + Retry-After) instead of waiting for
    # the function's timeout.
    answer_budget_seconds: float = Field(default=2.0, gt=0, le=10)
    producers_table_name: str = Field(min_length=1)

    @property
    def jwks_url(self) -> str:
        return self.auth_jwks_url or f"{self.auth_issuer.rstrip('/')}/.well-known/jwks.json"


@per_process
def get_settings() -> AuthorizerSettings:
    return load(AuthorizerSettings)
