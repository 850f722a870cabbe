"""The facade's discovery documents: RFC 8414 authorization server metadata and OIDC
discovery, both naming PUBLIC_BASE_URL as the issuer and advertising what MCP clients look
for (PKCE S256, Client ID Metadata Documents, registration, RFC 9207 `iss`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

AUTHORIZE_PATH = "/oauth/authorize"
TOKEN_PATH = "/oauth/token"
REGISTER_PATH = "/oauth/register"
CONSENT_PATH = "/oauth/consent"
CALLBACK_PATH = "/oauth/callback"
JWKS_PATH = "/oauth/jwks.json"
RFC8414_PATH = "/.well-known/oauth-authorization-server"
OIDC_PATH = "/.well-known/openid-configuration"
# What a browser-side client fetches cross-origin (the pages it navigates to are not).
CROSS_ORIGIN_PATHS = frozenset({RFC8414_PATH, OIDC_PATH, JWKS_PATH, REGISTER_PATH, TOKEN_PATH})


def authorization_server_metadata(issuer: str, scopes: Iterable[str]) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}{AUTHORIZE_PATH}",
        "token_endpoint": f"{issuer}{TOKEN_PATH}",
        "registration_endpoint": f"{issuer}{REGISTER_PATH}",
        "jwks_uri": f"{issuer}{JWKS_PATH}",
        "scopes_supported": sorted(set(scopes)),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["none"],
        "code_challenge_methods_supported": ["S256"],
        "client_id_metadata_document_supported": True,
        "authorization_response_iss_parameter_supported": True,
    }


def openid_configuration(issuer: str, scopes: Iterable[str]) -> dict[str, Any]:
    """The same server as OIDC discovery describes one (the fields OIDC requires added)."""
    return {
        **authorization_server_metadata(issuer, scopes),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }
