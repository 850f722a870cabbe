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
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

from mcp_service.errors import Problem, SettingsError

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
    if not value:
        return value
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"must be an absolute {' or '.join(schemes)} URL, got {value!r}")
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        case_sensitive=False,
        extra="ignore",
        validate_default=True,
    )

    app_env: AppEnv = "local"
    log_level: LogLevel = "INFO"

    # The Cognito pool whose tokens are accepted.
    cognito_region: str = ""
    user_pool_id: str = ""
    app_client_id: Annotated[tuple[str, ...], NoDecode] = ()
    cognito_jwks_url: str = ""
    token_use: TokenUse = "access"
    required_scopes: Annotated[tuple[str, ...], NoDecode] = ()
    tool_scopes: Annotated[dict[str, tuple[str, ...]], NoDecode] = Field(default_factory=dict)

    # Verification limits.
    jwt_leeway_seconds: float = Field(default=5.0, ge=0, le=300)
    max_token_bytes: int = Field(default=16_384, ge=512, le=1_048_576)
    jwks_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    jwks_max_age_seconds: float = Field(default=3600.0, ge=10)
    jwks_kid_miss_cooldown_seconds: float = Field(default=10.0, ge=0, le=3600)
    jwks_failure_backoff_seconds: float = Field(default=2.0, ge=0, le=300)
    token_cache_max_entries: int = Field(default=10_000, ge=0, le=10_000_000)

    # The client side: `token` and `call`.
    oauth_client_id: str = ""
    oauth_client_secret: SecretStr = SecretStr("")
    oauth_scopes: str = ""
    token_url: str = ""
    mcp_url: str = DEFAULT_MCP_URL

    # The service.
    public_base_url: str = ""
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    # SIGTERM: stop accepting, let requests in flight finish for up to this long (ECS gives 30 s).
    shutdown_grace_seconds: float = Field(default=20.0, ge=0, le=600)
    cors_allow_origins: Annotated[tuple[str, ...], NoDecode] = ()

    # Redis: shared JWKS, verified tokens and revocations (empty REDIS_URL: in-process only).
    redis_url: str = ""
    redis_key_prefix: str = Field(default="mcp", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    # 1 s: under wrk -c32 a replica's event loop runs up to ~0.3 s late (bench/redis_timeouts.py)
    redis_timeout_seconds: float = Field(default=1.0, gt=0, le=10)
    redis_connect_timeout_seconds: float = Field(default=1.0, gt=0, le=10)
    redis_breaker_cooloff_seconds: float = Field(default=2.0, gt=0, le=300)
    token_cache_secret: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    token_cache_l2: bool = False
    jwks_stale_max_seconds: float = Field(default=86_400.0, ge=0)
    jwks_shared_wait_seconds: float = Field(default=2.0, ge=0, le=30)
    revocation_ttl_seconds: int = Field(default=90_000, ge=60)

    # Observability.
    access_log: bool = False
    metrics_enabled: bool = True  # false: no /metrics, no samples recorded (~1.4 % of a call)
    metrics_port: int = Field(default=0, ge=0, le=65_535)  # 0: /metrics on the main port
    readiness_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    readiness_interval_seconds: float = Field(default=10.0, ge=1, le=3600)

    # The embedded issuer (APP_ENV=local without USER_POOL_ID).
    local_issuer_key_file: Path = Field(default_factory=_default_key_file)
    local_issuer_allow_remote: bool = False
    local_issuer_scopes: Annotated[tuple[str, ...], NoDecode] = ("mcp/tools",)
    local_token_lifetime_seconds: int = Field(default=3600, ge=60, le=86_400)

    # Rate limits and overload protection (README, "Rate limits"). Limits use the notation of the
    # `limits` library: "600/minute", "10 per 2 seconds", several joined by ";"; "off" disables.
    rate_limit: str = "600/minute"
    rate_limit_groups: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    rate_limit_fallback: str = ""
    rate_limit_tool_costs: Annotated[dict[str, int], NoDecode] = Field(default_factory=dict)
    rate_limit_failure_mode: Literal["open", "closed"] = "open"
    rate_limit_key_prefix: str = Field(default="", max_length=200)
    rate_limit_redis_timeout_seconds: float = Field(default=0.25, gt=0, le=10)
    rate_limit_redis_cooldown_seconds: float = Field(default=2.0, gt=0, le=300)
    ip_rate_limit: str = "100/second"
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = ()
    max_in_flight: int = Field(default=256, ge=0, le=1_000_000)
    tool_timeout_seconds: float = Field(default=25.0, ge=0, le=86_400)

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

    @field_validator("required_scopes", "local_issuer_scopes")
    @classmethod
    def _scopes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for scope in value:
            if not _SCOPE.match(scope):
                raise ValueError(f"{scope!r} is not a valid OAuth scope")
        return value

    @field_validator("tool_scopes", mode="before")
    @classmethod
    def _tool_scopes(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else {}
        if not isinstance(value, dict):
            raise ValueError('must be a JSON object such as {"add": ["mcp/math"]}')
        return {name: _split_list(scopes) for name, scopes in value.items()}

    @field_validator("rate_limit", "ip_rate_limit", "rate_limit_fallback")
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
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except ValueError:
                value = None
        if not isinstance(value, dict):
            example = '{"premium": "6000/minute"}'
            if info.field_name == "rate_limit_tool_costs":
                example = '{"get_user_info": 5}'
            raise ValueError(f"must be a JSON object such as {example}")
        return value

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

    @field_validator("cognito_jwks_url", "token_url", "mcp_url", "public_base_url")
    @classmethod
    def _urls(cls, value: str) -> str:
        return _check_url(value.strip()).rstrip("/") if value.strip() else ""

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: str) -> str:
        return _check_url(value.strip(), schemes=("redis", "rediss", "unix"))

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

    # Per-command requirements ------------------------------------------------------------------

    def serve_problems(self, host: str = "127.0.0.1") -> list[Problem]:
        problems: list[Problem] = []
        if self.metrics_port and not self.metrics_enabled:
            problems.append(("METRICS_PORT", "is set but METRICS_ENABLED is false"))
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
        if self.app_env == "production" and self.cognito_jwks_url.startswith("http://"):
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

    def _embedded_issuer_problems(self, host: str) -> list[Problem]:
        from mcp_service.netutil import is_loopback

        if is_loopback(host) or not host:
            return []
        if not self.local_issuer_allow_remote:
            return [
                (
                    "LOCAL_ISSUER_ALLOW_REMOTE",
                    f"the embedded issuer refuses to listen on {host}; bind 127.0.0.1, set "
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
