"""Settings from the environment and `.env`, and the per-command checks on them.

Field validators catch malformed values; `serve_problems()` and `client_problems()` catch what
is missing for one command, so `token` never needs the pool settings and `serve` never needs the
client secret. Every problem is reported as (VARIABLE, message) so the CLI can print one line
per variable and exit 2.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

from mcp_service.errors import Problem, SettingsError
from mcp_service.jsonsetting import json_object
from mcp_service.upstreamconfig import Upstream, parse_upstreams

if TYPE_CHECKING:
    from cache.tls import RedisTls

__all__ = ["Problem", "Settings", "SettingsError", "load_settings"]

AppEnv = Literal["local", "development", "test", "staging", "production"]
TokenUse = Literal["access", "id", "any"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

LOCAL_POOL_SUFFIX = "mcpLocal01"
LOCAL_CLIENT_ID = "mcp-local-client"
LOCAL_CLIENT_SECRET = "mcp-local-secret"
DEFAULT_MCP_URL = "http://127.0.0.1:8000/mcp"

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
_POOL_ID = re.compile(r"^[\w-]+_[0-9A-Za-z]+$")
_SCOPE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")  # RFC 6749 scope-token


def _default_key_file() -> Path:
    return Path.home() / ".local" / "state" / "mcp-service" / "issuer-key.pem"


def _split_list(value: Any) -> Any:
    """Comma- (or space-) separated strings become tuples; JSON lists are accepted too."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return tuple(json.loads(text))
        return tuple(part for part in re.split(r"[,\s]+", text) if part)
    return value


def _parse_limits(value: str) -> Any:
    from cache.windows import parse_limits

    return parse_limits(value)


def _check_url(value: str, *, schemes: tuple[str, ...] = ("http", "https")) -> str:
    """`value` if it is an absolute URL of one of `schemes`. The message never repeats the
    value: a URL may carry a password, and one that fails to parse cannot say where it is."""
    if not value:
        return value
    expected = f"must be an absolute {' or '.join(schemes)} URL"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises ValueError for a port out of range or not a number)
    except ValueError:
        raise ValueError(f"{expected}; this one does not parse") from None
    if parts.scheme.lower() not in schemes:
        raise ValueError(f"{expected}; this one has another scheme")
    if parts.scheme.lower() == "unix":
        if not parts.path:
            raise ValueError("a unix:// URL needs the socket's path, e.g. unix:///run/redis.sock")
        return value
    if not parts.hostname:
        hint = ""
        if "#" in value or "?" in value or "/" in (parts.netloc or value):
            hint = " (percent-encode special characters of a password, e.g. # as %23)"
        raise ValueError(f"{expected}; this one names no host{hint}")
    if "#" in value and "redis" in parts.scheme.lower():
        raise ValueError(
            f"{expected}; this one has a '#' (percent-encode special characters of a "
            "password, e.g. # as %23)"
        )
    if "redis" not in parts.scheme.lower() and (parts.username or parts.password):
        raise ValueError(f"{expected} without credentials in it")
    return value


def display_url(value: str) -> str:
    """`value` fit for a message or a summary: scheme, host, port and path; no credentials,
    query or fragment."""
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(not shown)"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}{parts.path}"


class LocalUser(BaseModel):
    """A person the embedded issuer's login page knows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    password: SecretStr = Field(min_length=1)
    groups: tuple[str, ...] = ()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        case_sensitive=False,
        extra="ignore",
        validate_default=True,
    )

    app_env: AppEnv = Field(
        default="local",
        description="Where the service runs. `local` without USER_POOL_ID runs the embedded "
        "issuer and gives `token` and `call` the local client; every other value needs a real "
        "user pool, and `production` also refuses a plain-http COGNITO_JWKS_URL.",
        json_schema_extra={"group": "General"},
    )
    log_level: LogLevel = Field(
        default="INFO",
        description="Lowest level of the JSON log lines written to stdout. `DEBUG` also lets "
        "through the MCP SDK's per-request lines, which are otherwise held back.",
        json_schema_extra={"group": "General"},
    )

    # The Cognito pool whose tokens are accepted.
    cognito_region: str = Field(
        default="",
        description="AWS region of the user pool, e.g. `eu-west-1`; with USER_POOL_ID it names "
        "the issuer `https://cognito-idp.<region>.amazonaws.com/<pool>`. Required for a real "
        "pool; the embedded issuer uses `us-east-1` when it is empty.",
        json_schema_extra={"group": "Cognito user pool"},
    )
    user_pool_id: str = Field(
        default="",
        description="Id of the user pool whose tokens are accepted, e.g. `eu-west-1_AbCdEf123`; "
        "it must be in COGNITO_REGION. Empty with `APP_ENV=local` runs the embedded issuer.",
        json_schema_extra={"group": "Cognito user pool"},
    )
    app_client_id: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="App client ids whose tokens are accepted, comma-separated: an access "
        "token's `client_id`, or an ID token's `aud`, must be one of them. Required with a real "
        "pool; the embedded issuer accepts its own client.",
        json_schema_extra={"group": "Cognito user pool"},
    )
    cognito_jwks_url: str = Field(
        default="",
        description="Where the signing keys are fetched from. Empty means the pool's own "
        "`<issuer>/.well-known/jwks.json`; set it for an emulator or a stand-in issuer "
        "(`production` requires https).",
        json_schema_extra={"group": "Cognito user pool"},
    )
    token_use: TokenUse = Field(
        default="access",
        description="Which Cognito tokens are accepted: `access` (meant for resource servers "
        "such as this one), `id`, or `any`.",
        json_schema_extra={"group": "Cognito user pool"},
    )
    required_scopes: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Scopes every request needs, comma- or space-separated, e.g. a resource-server "
        "scope `mcp/tools`; a token without one gets 403 `insufficient_scope`. Cognito access "
        "tokens carry no `aud`, so a required resource-server scope is what ties a token to "
        "this server.",
        json_schema_extra={"group": "Cognito user pool"},
    )
    tool_scopes: Annotated[dict[str, tuple[str, ...]], NoDecode] = Field(
        default_factory=dict,
        description='Extra scopes per tool, a JSON object such as `{"search": '
        '["mcp/search"]}` (every scope listed is needed). A caller without them does not see '
        "the tool in `tools/list` and gets 403 `insufficient_scope` naming the scope when it "
        "calls the tool. Names are the served server's tools (checked at start-up).",
        json_schema_extra={"group": "Cognito user pool"},
    )

    # The server the stack serves (docs/own-server.md).
    mcp_app: str = Field(
        default="mcp_service.demo:create_server",
        description="The FastMCP server to serve, `MODULE:ATTR` (`serve --app` overrides it): "
        "ATTR is a `FastMCP` instance or a zero-argument callable returning one; MODULE is "
        "imported with the working directory first on `sys.path`. The default is the built-in "
        "demo server. A server with its own `auth=` provider is refused.",
        json_schema_extra={"group": "Served server"},
    )
    tool_groups: Annotated[dict[str, tuple[str, ...]], NoDecode] = Field(
        default_factory=dict,
        description='Cognito groups per tool, a JSON object such as `{"deploy": ["ops", '
        '"admins"]}`: a caller in any one of them (`cognito:groups`) may call the tool. Anyone '
        "else does not see it in `tools/list` and gets 403 with reason `forbidden_group` (no "
        "step-up challenge: a client cannot ask for a group).",
        json_schema_extra={"group": "Served server"},
    )
    upstreams: Annotated[dict[str, Upstream], NoDecode] = Field(
        default_factory=dict,
        description="Upstream MCP servers mounted on the served server, a JSON object: "
        'namespace -> `{"url": "https://...", "auth": ..., "timeout_seconds": 30}`, where auth '
        'is `"none"`, `{"bearer_env": "VAR"}` (a static token from that environment variable) '
        'or `{"client_credentials": {"token_url": "...", "client_id": "...", '
        '"client_secret_env": "VAR", "scopes": ["..."]}}`. Tool `search` of upstream `docs` is '
        "`docs_search`. The caller's token is never sent upstream; a call that takes longer "
        "than `timeout_seconds` is a tool error ([own-server.md](own-server.md#upstreams)).",
        json_schema_extra={"group": "Served server"},
    )
    audit_log: bool = Field(
        default=False,
        description="One JSON line (logger `mcp_service.audit`) per `tools/call`, "
        "`resources/read` and `prompts/get`: timestamp, request_id, subject, client_id, "
        "component, upstream, outcome (`ok`, `error`, `forbidden`, `not_found`, "
        "`invalid_arguments`, `timeout`) and duration_ms; never arguments, results or tokens. "
        "Off by default: it costs about what the access log costs per call "
        "([performance.md](performance.md#the-audit-log)).",
        json_schema_extra={"group": "Served server"},
    )

    # Verification limits.
    jwt_leeway_seconds: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds: enough for "
        "ordinary clock drift without noticeably lengthening a token's life.",
        json_schema_extra={"group": "Verification limits"},
    )
    max_token_bytes: int = Field(
        default=16_384,
        ge=512,
        le=1_048_576,
        description="Tokens longer than this many bytes are refused (`oversized`) before any "
        "parsing. Cognito tokens are one to a few KB; 16 KiB leaves room for many groups and "
        "bounds the work a junk token can cause.",
        json_schema_extra={"group": "Verification limits"},
    )
    jwks_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="Timeout of one JWKS download, in seconds (at most 3 s of it for connecting).",
        json_schema_extra={"group": "Verification limits"},
    )
    jwks_max_age_seconds: float = Field(
        default=3600.0,
        ge=10,
        description="Age in seconds after which the keys are refreshed in the background while "
        "the known ones keep serving. An unknown `kid` triggers a refresh sooner, so a rotated "
        "key does not wait for this.",
        json_schema_extra={"group": "Verification limits"},
    )
    jwks_kid_miss_cooldown_seconds: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description="A token with an unknown `kid` triggers at most one JWKS refresh per this "
        "many seconds (for the whole fleet when the JWKS is shared), so a flood of random kids "
        "cannot hammer the identity provider.",
        json_schema_extra={"group": "Verification limits"},
    )
    jwks_failure_backoff_seconds: float = Field(
        default=2.0,
        ge=0,
        le=300,
        description="After a failed download with no usable keys, requests get 503 with "
        "`Retry-After` for this many seconds without a new download, so an outage of the "
        "identity provider is not met by one fetch per request.",
        json_schema_extra={"group": "Verification limits"},
    )
    token_cache_max_entries: int = Field(
        default=10_000,
        ge=0,
        le=10_000_000,
        description="Size of the in-process cache of verified tokens (least recently used go "
        "first; an entry never outlives its token's `exp`). `0` turns it off: every request "
        "then pays a full RS256 verification.",
        json_schema_extra={"group": "Verification limits"},
    )
    token_cache_max_bytes: int = Field(
        default=128 * 1_048_576,
        ge=0,
        le=64 * 1_073_741_824,
        description="Bound in bytes on the in-process cache of verified tokens, beside "
        "TOKEN_CACHE_MAX_ENTRIES (an entry is weighed as three times its token plus 4 KiB: "
        "claims, token and identity). 128 MiB holds the 10,000 entries of 1 KB tokens, or "
        "some 2,500 of 16 KB ones, within the 512 MiB task.",
        json_schema_extra={"group": "Verification limits"},
    )

    # The client side: `token` and `call`.
    oauth_client_id: str = Field(
        default="",
        description="App client that `mcp-service token` and `call` authenticate as "
        "(client-credentials grant). Empty with `APP_ENV=local` means `mcp-local-client`, the "
        "embedded issuer's client.",
        json_schema_extra={"group": "Client commands (token, call)"},
    )
    oauth_client_secret: SecretStr = Field(
        default=SecretStr(""),
        description="Secret of that app client; also the secret the embedded issuer accepts. "
        "Empty with `APP_ENV=local` means `mcp-local-secret`; an embedded issuer reachable off "
        "loopback needs one of its own (16 characters or more).",
        json_schema_extra={"group": "Client commands (token, call)"},
    )
    oauth_scopes: str = Field(
        default="",
        description="Scopes `token` and `call` request, space-separated (their `--scope` "
        "overrides it); empty requests none, and the issuer grants the client's defaults.",
        json_schema_extra={"group": "Client commands (token, call)"},
    )
    token_url: str = Field(
        default="",
        description="Token endpoint `token` and `call` ask, e.g. "
        "`https://<domain>.auth.<region>.amazoncognito.com/oauth2/token`. Empty with "
        "`APP_ENV=local` means `/oauth2/token` next to MCP_URL (the embedded issuer).",
        json_schema_extra={"group": "Client commands (token, call)"},
    )
    mcp_url: str = Field(
        default=DEFAULT_MCP_URL,
        description="MCP endpoint `mcp-service call` sends its tool call to (`--url` overrides "
        "it); the default is a local `mcp-service serve`.",
        json_schema_extra={"group": "Client commands (token, call)"},
    )

    # The service.
    public_base_url: str = Field(
        default="",
        description="External base URL, e.g. `https://mcp.example.com`, used in the "
        "protected-resource metadata and the `WWW-Authenticate` challenges. Empty takes the "
        "scheme and `Host` of each request; set it behind a load balancer.",
        json_schema_extra={"group": "Service"},
    )
    max_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        le=64 * 1_048_576,
        description="Request bodies larger than this many bytes get 413 before anything parses "
        "them (a declared `Content-Length` is checked before a byte is read).",
        json_schema_extra={"group": "Service"},
    )
    # SIGTERM: stop accepting, let requests in flight finish for up to this long (ECS gives 30 s).
    shutdown_grace_seconds: float = Field(
        default=20.0,
        ge=0,
        le=600,
        description="On SIGTERM the server stops accepting and gives requests in flight this "
        "many seconds to finish. Keep it below the orchestrator's stop timeout (ECS: 30 s).",
        json_schema_extra={"group": "Service"},
    )
    cors_allow_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Browser origins allowed to call cross-origin, comma-separated, or `*`; "
        "empty adds no CORS layer. Only browser-based clients need it. With APP_ENV=local, "
        "loopback origins (`http://127.0.0.1:*`, `http://localhost:*`, `http://[::1]:*`) are "
        "allowed too: without this setting on the login facade's discovery, registration, "
        "token and JWKS routes only.",
        json_schema_extra={"group": "Service"},
    )
    max_header_bytes: int = Field(
        default=32_768,
        ge=2048,
        le=1_048_576,
        description="Bound in bytes on one request's header fields, each and together (431 "
        "past it, counted with the request line's allowance of 8 KiB), applied before the "
        "HTTP parser is fed past it; an unfinished header is cut at it. Must leave room for "
        "a bearer token: at least MAX_TOKEN_BYTES + 1 KiB. The request target has its own "
        "bound of 8 KiB (414).",
        json_schema_extra={"group": "Service"},
    )
    max_header_count: int = Field(
        default=100,
        ge=16,
        le=10_000,
        description="Bound on the number of header fields of one request (431 past it). "
        "Browsers and MCP clients send about 10 to 20.",
        json_schema_extra={"group": "Service"},
    )
    header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="The request head must arrive within this many seconds: from the accept "
        "on a new connection, from its first byte on a kept-alive one. Silent connections and "
        "slow heads are closed (408 when part of a head came). An idle kept-alive connection "
        "keeps the 75 s keep-alive, longer than the ALB's 60 s idle timeout.",
        json_schema_extra={"group": "Service"},
    )
    body_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="A request body must have arrived this many seconds after its head: past "
        "it the request ends with 408 and frees its in-flight slot, so slow uploads cannot "
        "hold the cap.",
        json_schema_extra={"group": "Service"},
    )
    max_connections: int = Field(
        default=0,
        ge=0,
        le=1_000_000,
        description="Open connections one process accepts; past it a new connection is closed "
        "at once, with a log line. `0` derives it from the descriptor limit (RLIMIT_NOFILE) "
        "less a headroom of 64 or a tenth for Redis, the IdP and logs.",
        json_schema_extra={"group": "Service"},
    )

    # Redis: shared JWKS, verified tokens and revocations (empty REDIS_URL: in-process only).
    redis_url: str = Field(
        default="",
        description="Redis shared by the replicas: `redis://`, `rediss://` (TLS, e.g. "
        "`rediss://:AUTH_TOKEN@host:6379/0` for ElastiCache) or `unix://`. Empty keeps "
        "everything in process: nothing is shared and each replica counts its own rate limits.",
        json_schema_extra={"group": "Redis"},
    )
    redis_key_prefix: str = Field(
        default="mcp",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="First part of every Redis key and channel the service uses "
        "(`<prefix>:v1:...`), so that several deployments can share one Redis.",
        json_schema_extra={"group": "Redis"},
    )
    redis_cluster: bool = Field(
        default=False,
        description="Redis runs in cluster mode (ElastiCache cluster mode enabled): REDIS_URL "
        "names the configuration endpoint or any node; the slot map is read from it, `MOVED` "
        "and `ASK` are followed, and the rate limiter keeps one connection per primary.",
        json_schema_extra={"group": "Redis"},
    )
    redis_tls_ca_file: str = Field(
        default="",
        description="PEM bundle of the CA(s) that sign the Redis server certificate (a private "
        "CA); empty uses the URL's `ssl_ca_certs`, else the system trust store. Needs a "
        "`rediss://` REDIS_URL; every Redis connection (rate limiter included) uses it.",
        json_schema_extra={"group": "Redis"},
    )
    redis_tls_cert_file: str = Field(
        default="",
        description="PEM client certificate for mutual TLS to Redis (with REDIS_TLS_KEY_FILE); "
        "empty uses the URL's `ssl_certfile`, else none.",
        json_schema_extra={"group": "Redis"},
    )
    redis_tls_key_file: str = Field(
        default="",
        description="PEM private key of REDIS_TLS_CERT_FILE; empty uses the URL's `ssl_keyfile`.",
        json_schema_extra={"group": "Redis"},
    )
    redis_tls_verify: Literal["required", "none"] = Field(
        default="required",
        description="Whether the Redis server certificate and host name are checked. `none` "
        "(also `ssl_cert_reqs=none` in the URL) is refused with APP_ENV=production.",
        json_schema_extra={"group": "Redis"},
    )
    # 1 s: under wrk -c32 a replica's event loop runs up to ~0.3 s late (bench/redis_timeouts.py)
    redis_timeout_seconds: float = Field(
        default=1.0,
        gt=0,
        le=10,
        description="Bound in seconds on each Redis call of the shared caches and revocations "
        "(the rate limiter has its own). A loaded replica's event loop runs up to ~0.3 s late; "
        "1 s keeps a busy replica from opening its breaker on a healthy Redis.",
        json_schema_extra={"group": "Redis"},
    )
    redis_connect_timeout_seconds: float = Field(
        default=1.0,
        gt=0,
        le=10,
        description="Bound in seconds on opening a connection for the shared caches and "
        "revocations.",
        json_schema_extra={"group": "Redis"},
    )
    redis_breaker_cooloff_seconds: float = Field(
        default=2.0,
        gt=0,
        le=300,
        description="After two consecutive failures the shared caches skip Redis for this many "
        "seconds, so no request waits on a dead Redis, then let one probe through.",
        json_schema_extra={"group": "Redis"},
    )
    token_cache_secret: Annotated[tuple[SecretStr, ...], NoDecode] = Field(
        default=(),
        description="HMAC keys sealing what the replicas share in Redis, 32 characters or more "
        "each, comma-separated: the first seals, all are accepted (rotate by putting the new one "
        "first). Without it the JWKS and verified tokens are not shared; revocations and rate "
        "limits still are.",
        json_schema_extra={"group": "Redis"},
    )
    token_cache_l2: bool = Field(
        default=False,
        description="On an in-process miss, look the token's verified claims up in Redis (and "
        "store them there) before verifying it. Off by default: the round trip costs more than "
        "a local RS256 verification and adds a write to every miss. Needs TOKEN_CACHE_SECRET.",
        json_schema_extra={"group": "Redis"},
    )
    jwks_stale_max_seconds: float = Field(
        default=86_400.0,
        ge=0,
        description="How long past JWKS_MAX_AGE_SECONDS the last good keys keep serving (from "
        "this process or the shared copy) while the identity provider cannot be reached, in "
        "seconds.",
        json_schema_extra={"group": "Redis"},
    )
    jwks_shared_wait_seconds: float = Field(
        default=2.0,
        ge=0,
        le=30,
        description="How long a replica waits for another replica's JWKS download to reach "
        "Redis before fetching from the identity provider itself, in seconds.",
        json_schema_extra={"group": "Redis"},
    )
    revocation_ttl_seconds: int = Field(
        default=90_000,
        ge=60,
        description="How long a revocation is kept, in seconds: longer than the longest token "
        "lifetime (Cognito: one day), so a revoked token expires before its revocation does.",
        json_schema_extra={"group": "Redis"},
    )

    # Observability.
    access_log: bool = Field(
        default=False,
        description="Write one JSON line per request (method, redacted path, status, duration, "
        "client address). Off by default: a line costs ~4 % of a tool call's CPU, and "
        "refusals and errors are logged either way.",
        json_schema_extra={"group": "Observability"},
    )
    metrics_enabled: bool = Field(
        default=True,
        description="Record and serve Prometheus metrics. `false` removes `/metrics` and records "
        "nothing (~1.4 % of a tool call's CPU); request ids, logs and health checks stay.",
        json_schema_extra={"group": "Observability"},
    )
    metrics_port: int = Field(
        default=0,
        ge=0,
        le=65_535,
        description="Serve `/metrics` on this port of its own instead of the service port. `0` "
        "keeps it on the service port, where nginx and the load balancer refuse it.",
        json_schema_extra={"group": "Observability"},
    )
    readiness_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        le=30,
        description="Time budget of each readiness check, in seconds; a check that takes longer "
        "counts as down.",
        json_schema_extra={"group": "Observability"},
    )
    readiness_interval_seconds: float = Field(
        default=10.0,
        ge=1,
        le=3600,
        description="How often each process re-evaluates readiness for the `mcp_ready` and "
        "`mcp_dependency_up` gauges, in seconds (`/readyz` evaluates on every request).",
        json_schema_extra={"group": "Observability"},
    )

    # The embedded issuer (APP_ENV=local without USER_POOL_ID).
    local_issuer_key_file: Path = Field(
        default_factory=_default_key_file,
        description="PEM file of the embedded issuer's RSA signing key, created (mode 0600) on "
        "first use; a key file other users can read is refused.",
        json_schema_extra={"group": "Embedded issuer"},
    )
    local_issuer_allow_remote: bool = Field(
        default=False,
        description="Let the embedded issuer listen on a non-loopback address, e.g. in a "
        "container. It then needs an OAUTH_CLIENT_SECRET of its own.",
        json_schema_extra={"group": "Embedded issuer"},
    )
    local_issuer_scopes: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("mcp/tools",),
        description="Scopes the embedded issuer grants, comma- or space-separated; the scopes in "
        "REQUIRED_SCOPES and TOOL_SCOPES are added.",
        json_schema_extra={"group": "Embedded issuer"},
    )
    local_token_lifetime_seconds: int = Field(
        default=3600,
        ge=60,
        le=86_400,
        description="Lifetime of the embedded issuer's tokens, in seconds (Cognito's default "
        "for access tokens is one hour).",
        json_schema_extra={"group": "Embedded issuer"},
    )

    local_users: Annotated[dict[str, LocalUser], NoDecode] = Field(
        default_factory=dict,
        description="People the embedded issuer's login page knows, a JSON object such as "
        '`{"ada": {"password": "...", "groups": ["admins"]}}`. Empty: one user is generated and '
        "its credentials written (mode 0600) to `local-user.json` beside "
        "LOCAL_ISSUER_KEY_FILE, whose path (never the password) is logged.",
        json_schema_extra={"group": "Embedded issuer"},
    )

    # Interactive login: the authorization server facade (docs/oauth.md).
    oauth_proxy: bool | None = Field(
        default=None,
        description="Serve an OAuth authorization server in front of Cognito (`/oauth/*`, RFC "
        "8414 and OIDC discovery, DCR, Client ID Metadata Documents, consent), so MCP clients "
        "can log a person in; its own tokens are accepted beside Cognito's. Unset: on with the "
        "embedded issuer, off otherwise. Needs PUBLIC_BASE_URL (locally it defaults to "
        "`http://127.0.0.1:<port>`).",
        json_schema_extra={"group": "Interactive login"},
    )
    cognito_domain: str = Field(
        default="",
        description="Base URL of the user pool's managed login, e.g. "
        "`https://auth.example.com` or `https://<prefix>.auth.<region>.amazoncognito.com`, "
        "where people sign in (`/oauth2/authorize`) and codes are exchanged "
        "(`/oauth2/token`). Locally it defaults to PUBLIC_BASE_URL (the embedded issuer).",
        json_schema_extra={"group": "Interactive login"},
    )
    oauth_proxy_client_id: str = Field(
        default="",
        description="The Cognito app client the facade signs people in with (authorization "
        "code grant, its callback URL `<PUBLIC_BASE_URL>/oauth/callback`). Locally it defaults "
        "to the embedded issuer's client.",
        json_schema_extra={"group": "Interactive login"},
    )
    oauth_proxy_client_secret: SecretStr = Field(
        default=SecretStr(""),
        description="Secret of OAUTH_PROXY_CLIENT_ID (empty for an app client without one). "
        "Locally it defaults to the embedded issuer's client secret.",
        json_schema_extra={"group": "Interactive login"},
    )
    oauth_proxy_scopes: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Scopes asked of Cognito, comma- or space-separated. Empty asks `openid` "
        "and the scopes of REQUIRED_SCOPES and TOOL_SCOPES. The scopes Cognito grants are "
        "the ones the facade's tokens carry.",
        json_schema_extra={"group": "Interactive login"},
    )
    oauth_proxy_signing_keys: SecretStr = Field(
        default=SecretStr(""),
        description="PEM RSA private keys (2048 bits or more) the facade signs its tokens "
        "with, separated by commas or newlines: the first signs, all are published at "
        "`/oauth/jwks.json` (keep a retired key listed until its tokens expire). Required "
        "outside local mode; locally a key is created (0600) beside LOCAL_ISSUER_KEY_FILE.",
        json_schema_extra={"group": "Interactive login"},
    )
    oauth_proxy_access_token_seconds: int = Field(
        default=900,
        ge=60,
        le=86_400,
        description="Lifetime of the facade's access tokens, in seconds: short, since a "
        "refresh token gets a new one.",
        json_schema_extra={"group": "Interactive login"},
    )
    oauth_proxy_refresh_token_seconds: int = Field(
        default=86_400,
        ge=300,
        le=31_536_000,
        description="Lifetime of a login session (a refresh token family), in seconds, from "
        "sign-in: rotation does not extend it. At most REVOCATION_TTL_SECONDS, so a revoked "
        "session stays revoked for as long as it could live.",
        json_schema_extra={"group": "Interactive login"},
    )
    oauth_proxy_consent_ttl_seconds: int = Field(
        default=2_592_000,
        ge=0,
        le=31_536_000,
        description="How long a person's approval of a client is remembered, in seconds "
        "(`0`: ask every time).",
        json_schema_extra={"group": "Interactive login"},
    )
    oauth_registration_rate_limit: str = Field(
        default="10/minute",
        description="Dynamic client registrations allowed per client address (notation as "
        "RATE_LIMIT; counted per replica), or `off`.",
        json_schema_extra={"group": "Interactive login"},
    )
    cimd_allow_loopback: bool = Field(
        default=False,
        description="Fetch Client ID Metadata Documents from loopback addresses too (tests "
        "only; refused in production). Private and link-local addresses stay refused.",
        json_schema_extra={"group": "Interactive login"},
    )
    cimd_ca_file: Path | None = Field(
        default=None,
        description="PEM file of the certificate authorities trusted for Client ID Metadata "
        "Documents instead of the system's (tests only; refused in production).",
        json_schema_extra={"group": "Interactive login"},
    )

    # Rate limits and overload protection (docs/rate-limits.md). Limits use the notation of the
    # `limits` library: "600/minute", "10 per 2 seconds", several joined by ";"; "off" disables.
    rate_limit: str = Field(
        default="600/minute",
        description="Per-subject limit, one budget per caller (the token's `sub`, else its "
        "`client_id`) shared by every replica through Redis: `600/minute`, `10 per 2 seconds`, "
        "or several joined by `;`, spent together; `off` disables it.",
        json_schema_extra={"group": "Rate limits and overload"},
    )
    rate_limit_groups: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description='Tiers by Cognito group, a JSON object such as `{"premium": "6000/minute"}`: '
        "a member of a listed group (`cognito:groups`) gets its limit instead of RATE_LIMIT; "
        "the first listed group that matches wins.",
        json_schema_extra={"group": "Rate limits and overload"},
    )
    rate_limit_fallback: str = Field(
        default="",
        description="The limit each replica counts in its own memory while Redis is unavailable "
        "and RATE_LIMIT_FAILURE_MODE is `open`, e.g. the fleet limit divided by the replica "
        "count; empty uses each caller's normal limit.",
        json_schema_extra={"group": "Rate limits and overload"},
    )
    rate_limit_tool_costs: Annotated[dict[str, int], NoDecode] = Field(
        default_factory=dict,
        description="Units a `tools/call` of a tool spends instead of 1, a JSON object such as "
        '`{"search": 5}`; a cost above the smallest limit is refused at start-up.',
        json_schema_extra={"group": "Rate limits and overload"},
    )
    rate_limit_failure_mode: Literal["open", "closed"] = Field(
        default="open",
        description="What the per-subject limit does while Redis is unavailable: `open` counts "
        "per replica (RATE_LIMIT_FALLBACK), `closed` answers 503 with `Retry-After`.",
        json_schema_extra={"group": "Rate limits and overload"},
    )
    rate_limit_key_prefix: str = Field(
        default="",
        max_length=200,
        description="Prefix of the rate-limit keys in Redis. Empty derives it from "
        "REDIS_KEY_PREFIX as `<REDIS_KEY_PREFIX>:v1:rl:`, so one prefix separates deployments.",
        json_schema_extra={"group": "Rate limits and overload"},
    )
    rate_limit_redis_timeout_seconds: float = Field(
        default=0.25,
        gt=0,
        le=10,
        description="Bound in seconds on the limiter's Redis round trip, which every request "
        "waits on; past it the connection is dropped and the failure mode applies until Redis "
        "answers again. Shorter than REDIS_TIMEOUT_SECONDS: a stalled Redis would otherwise "
        "hold every request, and a false timeout costs one cool-off of per-replica counting.",
        json_schema_extra={"group": "Rate limits and overload"},
    )
    rate_limit_redis_cooldown_seconds: float = Field(
        default=2.0,
        gt=0,
        le=300,
        description="After a Redis failure the limiter stops asking Redis for this many seconds "
        "while a background task reconnects, once per period; no request waits on a connect.",
        json_schema_extra={"group": "Rate limits and overload"},
    )
    ip_rate_limit: str = Field(
        default="100/second",
        description="Limit per client address, counted in each process's memory before "
        "authentication, so a flood of junk tokens is refused before any is parsed; notation "
        "as RATE_LIMIT. The default is ten times what RATE_LIMIT's default lets one caller do.",
        json_schema_extra={"group": "Rate limits and overload"},
    )
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Addresses or networks (CIDR) of the proxies in front of the service, "
        "comma-separated: only from them are `X-Forwarded-For` and `X-Forwarded-Proto` "
        "believed (per-IP limit and uvicorn). Empty: the TCP peer is the client.",
        json_schema_extra={"group": "Rate limits and overload"},
    )
    max_in_flight: int = Field(
        default=256,
        ge=0,
        le=1_000_000,
        description="Requests one process works on at once; past it, 503 with `Retry-After: 1` "
        "at once instead of a queue (health and metrics probes are never refused). `0` turns "
        "the cap off.",
        json_schema_extra={"group": "Rate limits and overload"},
    )
    tool_timeout_seconds: float = Field(
        default=25.0,
        ge=0,
        le=86_400,
        description="Seconds an async tool may run before FastMCP cancels it with an error (a "
        "sync tool runs in a thread and gets none); `0` turns it off. 25 s is below the 30 s "
        "`mcp-service call` waits and a load balancer's 60 s idle timeout.",
        json_schema_extra={"group": "Rate limits and overload"},
    )
    fast_path: bool = Field(
        default=True,
        description="Answer single stateless JSON requests (`tools/call`, `tools/list`, "
        "`resources/*`, `prompts/*`, `ping` at a handshake-era protocol version) through "
        "FastMCP's own dispatch without the MCP SDK's per-request transport, with the same "
        "answers at about half the CPU. Anything else, and any FastMCP release it was not "
        "proven on, takes the SDK path; `false` sends everything there.",
        json_schema_extra={"group": "Rate limits and overload"},
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("app_env", "token_use", "rate_limit_failure_mode", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator(
        "app_client_id",
        "required_scopes",
        "cors_allow_origins",
        "local_issuer_scopes",
        "oauth_proxy_scopes",
        mode="before",
    )
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("token_cache_secret", mode="before")
    @classmethod
    def _secrets(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("token_cache_secret")
    @classmethod
    def _secret_length(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        if any(len(secret.get_secret_value()) < 32 for secret in value):
            raise ValueError("each secret needs 32 characters or more (e.g. openssl rand -hex 32)")
        return value

    @field_validator("required_scopes", "local_issuer_scopes", "oauth_proxy_scopes")
    @classmethod
    def _scopes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for scope in value:
            if not _SCOPE.match(scope):
                raise ValueError(f"{scope!r} is not a valid OAuth scope")
        return value

    @field_validator("tool_scopes", mode="before")
    @classmethod
    def _tool_scopes(cls, value: Any) -> Any:
        value = json_object(value, '{"search": ["mcp/search"]}')
        return {name: _split_list(scopes) for name, scopes in value.items()}

    @field_validator("upstreams", mode="before")
    @classmethod
    def _upstreams(cls, value: Any) -> Any:
        return parse_upstreams(value)

    @field_validator("tool_groups", mode="before")
    @classmethod
    def _tool_groups(cls, value: Any) -> Any:
        example = '{"deploy": ["ops", "admins"]}'
        value = json_object(value, example)
        for name, groups in value.items():
            if (
                not isinstance(groups, list)
                or not groups
                or not all(isinstance(group, str) and group for group in groups)
            ):
                raise ValueError(f"{name!r}: give a non-empty list of group names, as in {example}")
        return {name: tuple(groups) for name, groups in value.items()}

    @field_validator("local_users", mode="before")
    @classmethod
    def _local_users(cls, value: Any) -> Any:
        return json_object(value, '{"ada": {"password": "..."}}')

    @field_validator(
        "rate_limit", "ip_rate_limit", "rate_limit_fallback", "oauth_registration_rate_limit"
    )
    @classmethod
    def _rate_limit(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip()
        if value.lower() == "off" or (not value and info.field_name == "rate_limit_fallback"):
            return value.lower()
        if not value:
            raise ValueError('is empty: give a limit such as 600/minute, or "off"')
        _parse_limits(value)
        return value

    @field_validator("rate_limit_groups", "rate_limit_tool_costs", mode="before")
    @classmethod
    def _json_object(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name == "rate_limit_tool_costs":
            return json_object(value, '{"search": 5}')
        return json_object(value, '{"premium": "6000/minute"}')

    @field_validator("rate_limit_groups")
    @classmethod
    def _groups(cls, value: dict[str, str]) -> dict[str, str]:
        for group, limit in value.items():
            try:
                _parse_limits(limit)
            except ValueError as exc:
                raise ValueError(f"group {group!r}: {exc}") from None
        return value

    @field_validator("rate_limit_tool_costs")
    @classmethod
    def _tool_costs(cls, value: dict[str, int], info: ValidationInfo) -> dict[str, int]:
        data = info.data
        tiers = [data.get("rate_limit", ""), data.get("rate_limit_fallback", "")]
        tiers += data.get("rate_limit_groups", {}).values()
        smallest = min(
            (
                limit.amount
                for tier in tiers
                if tier not in ("", "off")
                for limit in _parse_limits(tier)
            ),
            default=None,
        )
        for tool, cost in value.items():
            if cost < 1:
                raise ValueError(f"{tool!r}: a cost is a whole number of 1 or more")
            if smallest is not None and cost > smallest:
                raise ValueError(
                    f"{tool!r} costs {cost}, more than the smallest limit ({smallest}): "
                    "it could never be called"
                )
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxy_list(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from ipaddress import ip_network

        for cidr in value:
            try:
                ip_network(cidr, strict=True)
            except ValueError:
                try:
                    network = ip_network(cidr, strict=False)
                except ValueError:
                    raise ValueError(
                        f"{cidr!r} is not an IP address or CIDR such as 10.0.0.0/8"
                    ) from None
                raise ValueError(
                    f"{cidr!r} has host bits set: write the network, {network}"
                ) from None
        return value

    @field_validator("cognito_region")
    @classmethod
    def _region(cls, value: str) -> str:
        value = value.strip()
        if value and not _REGION.match(value):
            raise ValueError(f"{value!r} is not an AWS region such as us-east-1")
        return value

    @field_validator("user_pool_id")
    @classmethod
    def _pool(cls, value: str) -> str:
        value = value.strip()
        if value and not _POOL_ID.match(value):
            raise ValueError(f"{value!r} is not a user pool id such as us-east-1_AbCdEf123")
        return value

    @field_validator(
        "cognito_jwks_url", "token_url", "mcp_url", "public_base_url", "cognito_domain"
    )
    @classmethod
    def _urls(cls, value: str) -> str:
        return _check_url(value.strip()).rstrip("/") if value.strip() else ""

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: str) -> str:
        value = _check_url(value.strip(), schemes=("redis", "rediss", "unix"))
        if value:
            from cache.redisline import RedisAddress

            try:
                RedisAddress.from_url(value)
            except ValueError:
                raise ValueError(
                    "is not a Redis URL such as redis://[[user]:password@]host:6379/0 (the "
                    "database a number; special characters of a password percent-encoded)"
                ) from None
        return value

    @field_validator("cors_allow_origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if origin != "*":
                _check_url(origin)
        return tuple(origin.rstrip("/") for origin in value)

    # Derived values --------------------------------------------------------------------------

    @property
    def embedded_issuer(self) -> bool:
        """The local stand-in for Cognito serves and signs: a laptop tool, never production."""
        return self.app_env == "local" and not self.user_pool_id

    @property
    def region(self) -> str:
        return self.cognito_region or "us-east-1"

    @property
    def pool_id(self) -> str:
        if self.user_pool_id:
            return self.user_pool_id
        return f"{self.region}_{LOCAL_POOL_SUFFIX}"

    @property
    def issuer(self) -> str:
        return f"https://cognito-idp.{self.region}.amazonaws.com/{self.pool_id}"

    @property
    def jwks_url(self) -> str:
        return self.cognito_jwks_url or f"{self.issuer}/.well-known/jwks.json"

    @property
    def redis_tls(self) -> RedisTls | None:
        """The TLS of every Redis connection (None unless REDIS_URL is `rediss://`)."""
        from cache.tls import RedisTls

        return RedisTls.of(
            self.redis_url,
            ca_file=self.redis_tls_ca_file,
            cert_file=self.redis_tls_cert_file,
            key_file=self.redis_tls_key_file,
            verify=self.redis_tls_verify if self.redis_tls_verify == "none" else None,
        )

    def redis_problems(self) -> list[Problem]:
        """Redis settings that parse but cannot work together (checked by `serve`,
        `check-config` and `revoke`)."""
        tls_files = {
            "REDIS_TLS_CA_FILE": self.redis_tls_ca_file,
            "REDIS_TLS_CERT_FILE": self.redis_tls_cert_file,
            "REDIS_TLS_KEY_FILE": self.redis_tls_key_file,
        }
        problems: list[Problem] = []
        if self.redis_cluster:
            parts = urlsplit(self.redis_url)
            if not self.redis_url or parts.scheme == "unix":
                problems.append(("REDIS_CLUSTER", "needs a redis:// or rediss:// REDIS_URL"))
            elif parts.path.strip("/") not in ("", "0"):
                problems.append(("REDIS_URL", "cluster mode has database 0 only"))
        tls = self.redis_tls
        if tls is None:
            named = [name for name, value in tls_files.items() if value]
            if self.redis_tls_verify == "none":
                named.append("REDIS_TLS_VERIFY")
            return problems + [(name, "needs a rediss:// REDIS_URL (TLS)") for name in named]
        if not tls.verify and self.app_env == "production":
            problems.append(
                (
                    "REDIS_TLS_VERIFY",
                    "none (or ssl_cert_reqs=none in REDIS_URL) is refused in production: "
                    "anyone on the path could read and write the shared state",
                )
            )
        if tls.key_file and not tls.cert_file:
            problems.append(("REDIS_TLS_CERT_FILE", "required with REDIS_TLS_KEY_FILE"))
        for name, path in (
            ("REDIS_TLS_CA_FILE", tls.ca_file),
            ("REDIS_TLS_CERT_FILE", tls.cert_file),
            ("REDIS_TLS_KEY_FILE", tls.key_file),
        ):
            if path and not Path(path).is_file():
                problems.append((name, f"{path} is not a readable file"))
        if not problems:
            import ssl

            try:
                tls.context()
            except (OSError, ssl.SSLError) as exc:
                problems.append(("REDIS_TLS_CA_FILE", f"cannot be used for TLS: {exc}"))
        return problems

    @property
    def rate_limit_prefix(self) -> str:
        """RATE_LIMIT_KEY_PREFIX, or the rate-limit keys' place under REDIS_KEY_PREFIX."""
        return self.rate_limit_key_prefix or f"{self.redis_key_prefix}:v1:rl:"

    @property
    def client_id(self) -> str:
        """The client that `token` and `call` authenticate as."""
        if self.oauth_client_id or self.app_env != "local":
            return self.oauth_client_id
        return LOCAL_CLIENT_ID

    @property
    def client_secret(self) -> str:
        secret = self.oauth_client_secret.get_secret_value()
        if secret or self.app_env != "local":
            return secret
        return LOCAL_CLIENT_SECRET

    @property
    def accepted_client_ids(self) -> frozenset[str]:
        if self.app_client_id:
            return frozenset(self.app_client_id)
        if self.embedded_issuer:
            return frozenset({self.client_id})
        return frozenset()

    @property
    def token_endpoint(self) -> str:
        """TOKEN_URL, or locally the embedded issuer next to MCP_URL."""
        if self.token_url or self.app_env != "local":
            return self.token_url
        parts = urlsplit(self.mcp_url)
        return f"{parts.scheme}://{parts.netloc}/oauth2/token"

    @property
    def oauth_proxy_enabled(self) -> bool:
        """OAUTH_PROXY, by default on with the embedded issuer only."""
        return self.embedded_issuer if self.oauth_proxy is None else self.oauth_proxy

    @property
    def login_domain(self) -> str:
        """COGNITO_DOMAIN, or locally the embedded issuer at PUBLIC_BASE_URL."""
        return self.cognito_domain or (self.public_base_url if self.embedded_issuer else "")

    @property
    def login_client_id(self) -> str:
        return self.oauth_proxy_client_id or (self.client_id if self.embedded_issuer else "")

    @property
    def login_client_secret(self) -> str:
        secret = self.oauth_proxy_client_secret.get_secret_value()
        return secret or (self.client_secret if self.embedded_issuer else "")

    # Per-command requirements ------------------------------------------------------------------

    def serve_warnings(self) -> list[Problem]:
        """What `serve` accepts but an operator should know: printed by check-config, logged
        at start."""
        warnings: list[Problem] = []
        if self.app_env == "production" and not self.public_base_url:
            warnings.append(
                (
                    "PUBLIC_BASE_URL",
                    "is unset: the resource URL in challenges and metadata comes from each "
                    "request's Host header; set the URL clients use",
                )
            )
        return warnings

    def serve_problems(self, host: str = "127.0.0.1") -> list[Problem]:
        problems: list[Problem] = self.redis_problems()
        if self.max_connections:
            from mcp_service.edge import default_max_connections

            most = default_max_connections()
            if self.max_connections > most:
                problems.append(
                    (
                        "MAX_CONNECTIONS",
                        f"{self.max_connections} is more than the descriptor limit leaves "
                        f"room for ({most}); raise RLIMIT_NOFILE or leave it 0 (derived)",
                    )
                )
        if self.max_header_bytes < self.max_token_bytes + 1024:
            problems.append(
                (
                    "MAX_HEADER_BYTES",
                    f"must be at least MAX_TOKEN_BYTES + 1024 ({self.max_token_bytes + 1024}): "
                    "a header must have room for the largest accepted token",
                )
            )
        if self.metrics_port and not self.metrics_enabled:
            problems.append(("METRICS_PORT", "is set but METRICS_ENABLED is false"))
        if self.oauth_proxy_enabled:
            problems.extend(self._oauth_proxy_problems())
        elif self.app_env == "production":
            problems.extend(self._test_only_problems())
        if self.embedded_issuer:
            problems.extend(self._embedded_issuer_problems(host))
            return problems
        for name in ("cognito_region", "user_pool_id"):
            if not getattr(self, name):
                reason = (
                    "required when APP_ENV=production (the embedded issuer is refused there)"
                    if self.app_env == "production"
                    else "required to verify Cognito tokens"
                )
                problems.append((name.upper(), reason))
        if self.app_env == "production" and urlsplit(self.cognito_jwks_url).scheme == "http":
            problems.append(
                ("COGNITO_JWKS_URL", "must be https in production: the keys decide who gets in")
            )
        if not self.app_client_id:
            problems.append(
                ("APP_CLIENT_ID", "required: the app client ids whose tokens are accepted")
            )
        if (
            self.user_pool_id
            and self.cognito_region
            and not self.user_pool_id.startswith(f"{self.cognito_region}_")
        ):
            problems.append(
                (
                    "USER_POOL_ID",
                    f"{self.user_pool_id!r} is not in COGNITO_REGION {self.cognito_region}",
                )
            )
        return problems

    def _oauth_proxy_problems(self) -> list[Problem]:
        """What the authorization server facade needs (OAUTH_PROXY on)."""
        problems: list[Problem] = []
        if not self.public_base_url and not self.embedded_issuer:
            problems.append(
                ("PUBLIC_BASE_URL", "required with OAUTH_PROXY: it is the facade's issuer")
            )
        base = urlsplit(self.public_base_url)
        if base.scheme == "http" and (
            self.app_env == "production" or base.hostname not in ("127.0.0.1", "localhost", "::1")
        ):
            problems.append(
                ("PUBLIC_BASE_URL", "must be https with OAUTH_PROXY (http only on loopback)")
            )
        if base.path:
            problems.append(("PUBLIC_BASE_URL", "must have no path with OAUTH_PROXY"))
        if not self.embedded_issuer:
            required = {
                "COGNITO_DOMAIN": self.cognito_domain,
                "OAUTH_PROXY_CLIENT_ID": self.oauth_proxy_client_id,
                "OAUTH_PROXY_SIGNING_KEYS": self.oauth_proxy_signing_keys.get_secret_value(),
            }
            problems += [
                (name, "required with OAUTH_PROXY") for name, value in required.items() if not value
            ]
        # On by default locally, it keeps its state in process without the secret.
        if self.redis_url and not self.token_cache_secret and self.oauth_proxy:
            problems.append(
                (
                    "TOKEN_CACHE_SECRET",
                    "required with OAUTH_PROXY and REDIS_URL: the login state the replicas "
                    "share is sealed with it",
                )
            )
        if self.oauth_proxy_refresh_token_seconds > self.revocation_ttl_seconds:
            problems.append(
                (
                    "OAUTH_PROXY_REFRESH_TOKEN_SECONDS",
                    f"must be at most REVOCATION_TTL_SECONDS ({self.revocation_ttl_seconds}): "
                    "a revoked session must stay revoked for as long as it can live",
                )
            )
        if self.oauth_proxy_signing_keys.get_secret_value():
            from mcp_service.oauth.keys import parse_signing_keys

            try:
                parse_signing_keys(self.oauth_proxy_signing_keys.get_secret_value())
            except ValueError as exc:
                problems.append(("OAUTH_PROXY_SIGNING_KEYS", str(exc)))
        if self.cimd_ca_file is not None and not self.cimd_ca_file.is_file():
            problems.append(("CIMD_CA_FILE", "is not a readable file"))
        if self.app_env == "production":
            problems.extend(self._test_only_problems())
        return problems

    def _test_only_problems(self) -> list[Problem]:
        return [
            (name, "is for tests only and refused in production")
            for name, value in (
                ("CIMD_ALLOW_LOOPBACK", self.cimd_allow_loopback),
                ("CIMD_CA_FILE", self.cimd_ca_file),
            )
            if value
        ]

    def _embedded_issuer_problems(self, host: str) -> list[Problem]:
        from mcp_service.netutil import is_loopback

        if is_loopback(host):
            return []
        if not self.local_issuer_allow_remote:
            return [
                (
                    "LOCAL_ISSUER_ALLOW_REMOTE",
                    f"the embedded issuer refuses to listen on {host!r}; bind 127.0.0.1, set "
                    "USER_POOL_ID for a real pool, or set LOCAL_ISSUER_ALLOW_REMOTE=true",
                )
            ]
        secret = self.oauth_client_secret.get_secret_value()
        if len(secret) < 16 or secret == LOCAL_CLIENT_SECRET:
            return [
                (
                    "OAUTH_CLIENT_SECRET",
                    "an embedded issuer reachable off loopback needs a secret of its own "
                    "(16 characters or more)",
                )
            ]
        return []

    def client_problems(self) -> list[Problem]:
        problems: list[Problem] = []
        if not self.client_id:
            problems.append(("OAUTH_CLIENT_ID", "required to request a token"))
        if not self.client_secret:
            problems.append(("OAUTH_CLIENT_SECRET", "required to request a token"))
        if not self.token_endpoint:
            problems.append(("TOKEN_URL", "required: the Cognito /oauth2/token endpoint"))
        return problems


def load_settings(**overrides: Any) -> Settings:
    """Read settings, turning pydantic's report into one line per variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(
            [(_variable(error["loc"]), _message(error)) for error in exc.errors()]
        ) from None
    except SourceError as exc:  # e.g. an unreadable .env file
        raise SettingsError([("SETTINGS", str(exc))]) from None


def _variable(loc: tuple[int | str, ...]) -> str:
    return str(loc[0]).upper() if loc else "SETTINGS"


def _message(error: Any) -> str:
    message = str(error.get("msg", "invalid value"))
    return message.removeprefix("Value error, ")
