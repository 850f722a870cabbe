"""mcp-service serve | token | call | check-config.

Exit status: 0 success, 1 the operation failed (refused, unreachable, tool error), 2 the
configuration or the command line is wrong. Errors are one line each, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from mcp_service.errors import CommandError, Problem, SettingsError
from mcp_service.settings import Settings, display_url, load_settings

if TYPE_CHECKING:
    from mcp_service.served import Served

EXIT_FAILED = 1
EXIT_CONFIG = 2
APP_HELP = "the FastMCP server to serve (default MCP_APP, else the built-in demo)"

log = logging.getLogger("mcp_service")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        return int(args.run(settings, args))
    except SettingsError as exc:
        _config_failure(exc.problems)
    except CommandError as exc:
        print(f"mcp-service: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `check-config | head`: the reader left; nothing to report
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (so the exit flush cannot fail)
        return EXIT_FAILED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcp-service",
        description="An MCP server whose every call carries a verified AWS Cognito JWT.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve /mcp and the health and metadata routes")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8000, help="port (default 8000)")
    serve.add_argument("--workers", type=_positive, default=1, help="worker processes")
    serve.add_argument("--app", metavar="MODULE:ATTR", help=APP_HELP)
    serve.set_defaults(run=_serve)

    token = commands.add_parser("token", help="print an access token from TOKEN_URL")
    token.add_argument("--scope", default=None, help="scopes to request (default OAUTH_SCOPES)")
    token.set_defaults(run=_token)

    call = commands.add_parser("call", help="call a tool on MCP_URL and print its JSON result")
    call.add_argument("tool", help="the name of a tool of the server at MCP_URL")
    call.add_argument(
        "arguments",
        nargs="*",
        metavar="key=value",
        help="arguments; values are read as JSON when they parse (a=5 is a number)",
    )
    call.add_argument("--url", default=None, help="MCP endpoint (default MCP_URL)")
    call.add_argument("--scope", default=None, help="scopes to request (default OAUTH_SCOPES)")
    call.set_defaults(run=_call)

    revoke = commands.add_parser(
        "revoke", help="refuse a token family (--jti) or a subject's tokens (--sub), fleet-wide"
    )
    target = revoke.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--jti", help="a token's jti, a refresh token's (origin_jti) or a login session's family"
    )
    target.add_argument("--sub", help="every token of this subject issued before now")
    target.add_argument("--list", action="store_true", help="show the revocations in force")
    revoke.add_argument("--reason", default="", help="why, kept with the revocation")
    revoke.set_defaults(run=_revoke)

    check = commands.add_parser("check-config", help="validate the settings `serve` would use")
    check.add_argument("--host", default="127.0.0.1", help="the address serve would bind")
    check.add_argument("--app", metavar="MODULE:ATTR", help=APP_HELP)
    check.set_defaults(run=_check_config)
    return parser


def _port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError("port must be 1-65535")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _config_failure(problems: list[Problem]) -> NoReturn:
    for variable, message in problems:
        print(f"{variable}: {message}", file=sys.stderr)
    raise SystemExit(EXIT_CONFIG)


def _served(settings: Settings, args: argparse.Namespace) -> tuple[Settings, Served]:
    """The settings with `--app` applied (the flag wins over MCP_APP, and goes into the
    environment the workers read), checked, and the server they serve."""
    from mcp_service.served import served_server

    if args.app:
        os.environ["MCP_APP"] = args.app
        settings = settings.model_copy(update={"mcp_app": args.app})
    problems = settings.serve_problems(args.host)
    if problems:
        _config_failure(problems)
    return settings, served_server(settings)


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    settings, served = _served(_local_base_url(settings, args.port), args)
    import uvicorn

    from mcp_service.edge import PROTOCOL, configure_edge
    from observability.logs import configure_logging

    configure_logging(settings.log_level)
    if settings.metrics_port == args.port:
        _config_failure([("METRICS_PORT", f"must differ from the service port {args.port}")])
    for variable, message in settings.serve_warnings():
        log.warning("%s %s", variable, message, extra={"setting": variable})
    configure_edge(settings)  # this process's connections (workers configure their own)
    common: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "access_log": False,
        "log_config": None,
        "timeout_graceful_shutdown": settings.shutdown_grace_seconds,
        "timeout_keep_alive": 75,  # longer than the ALB idle timeout (60 s): no 502 on reuse
        # X-Forwarded-For/-Proto are read inside the app (build_service's proxy-headers layer,
        # TRUSTED_PROXIES only), so in-process tests see what `serve` sees: not here as well.
        "proxy_headers": False,
        # httptools, bounded: header size and count, head and body deadlines, connections.
        "http": PROTOCOL,
    }
    if args.workers > 1 and not settings.metrics_enabled:
        uvicorn.run("mcp_service.app:create_app", factory=True, workers=args.workers, **common)
    elif args.workers > 1:
        from observability.metrics import multiprocess_mode, multiprocess_registry

        # Each worker writes its samples to files here; any worker's /metrics (or the metrics
        # port, served by this supervisor process) reports the sum over all of them.
        with multiprocess_mode() as directory:
            if settings.metrics_port:
                _serve_metrics(settings, args.host, multiprocess_registry(directory))
            uvicorn.run("mcp_service.app:create_app", factory=True, workers=args.workers, **common)
    else:
        from mcp_service.app import build_service
        from mcp_service.heap import freeze_startup_heap

        try:
            service = build_service(settings, server=served.server)
        except SettingsError:
            raise
        except Exception as exc:  # e.g. an unusable issuer key file
            raise CommandError(str(exc)) from None
        if settings.metrics_port and service.metrics is not None:
            _serve_metrics(settings, args.host, service.metrics.registry)
        freeze_startup_heap()
        uvicorn.run(service.app, **common)
    return 0


def _local_base_url(settings: Settings, port: int) -> Settings:
    """Locally, the login facade's issuer defaults to this server on loopback (workers read
    it from the environment)."""
    if not (settings.oauth_proxy_enabled and settings.embedded_issuer) or settings.public_base_url:
        return settings
    base = f"http://127.0.0.1:{port}"
    os.environ["PUBLIC_BASE_URL"] = base
    return settings.model_copy(update={"public_base_url": base})


def _serve_metrics(settings: Settings, host: str, registry: Any) -> None:
    from observability.metrics import serve_metrics

    try:
        serve_metrics(settings.metrics_port, host, registry)
    except OSError as exc:
        raise CommandError(f"cannot serve metrics on port {settings.metrics_port}: {exc}") from None


def _check_config(settings: Settings, args: argparse.Namespace) -> int:
    settings, served = _served(settings, args)
    for variable, message in settings.serve_warnings():
        print(f"warning: {variable}: {message}", file=sys.stderr)
    summary = {
        "app_env": settings.app_env,
        "issuer": settings.issuer,
        "jwks_url": "embedded" if settings.embedded_issuer else display_url(settings.jwks_url),
        "embedded_issuer": settings.embedded_issuer,
        "app_client_ids": sorted(settings.accepted_client_ids),
        "token_use": settings.token_use,
        "required_scopes": list(settings.required_scopes),
        "mcp_app": settings.mcp_app,
        "tools": sorted(served.components.tool_names),
        "tool_scopes": {k: list(v) for k, v in settings.tool_scopes.items()},
        "tool_groups": {k: list(v) for k, v in settings.tool_groups.items()},
        "redis": "configured" if settings.redis_url else "none (in-process only)",
        "rate_limit": settings.rate_limit,
        "rate_limit_groups": settings.rate_limit_groups,
        "rate_limit_tool_costs": settings.rate_limit_tool_costs,
        "rate_limit_failure_mode": settings.rate_limit_failure_mode,
        "ip_rate_limit": settings.ip_rate_limit,
        "trusted_proxies": list(settings.trusted_proxies),
        "max_in_flight": settings.max_in_flight,
        "tool_timeout_seconds": settings.tool_timeout_seconds,
        "public_base_url": settings.public_base_url or "(from the request)",
        "oauth_proxy": settings.oauth_proxy_enabled,
    }
    print(json.dumps(summary, indent=2))
    return 0


def _revoke(settings: Settings, args: argparse.Namespace) -> int:
    from cache.revocations import Kind
    from mcp_service.revoke import list_revocations, revoke
    from observability.logs import configure_logging

    if not settings.redis_url:
        _config_failure([("REDIS_URL", "required: revocations are shared through Redis")])
    if problems := settings.redis_problems():
        _config_failure(problems)
    configure_logging(settings.log_level, sys.stderr)
    kind: Kind = "jti" if args.jti else "sub"
    value: str = args.jti or args.sub or ""
    if not args.list and not value.strip():
        print(f"mcp-service revoke: --{kind} needs a value", file=sys.stderr)
        return EXIT_CONFIG
    if args.list:
        lines = asyncio.run(list_revocations(settings))
    else:
        lines = [asyncio.run(revoke(settings, kind, value, args.reason))]  # exactly as given
    for line in lines:
        print(line)
    return 0


def _client_settings(settings: Settings) -> None:
    problems = settings.client_problems()
    if problems:
        _config_failure(problems)


def _token(settings: Settings, args: argparse.Namespace) -> int:
    from mcp_service.client import fetch_token

    _client_settings(settings)
    print(asyncio.run(fetch_token(settings, args.scope)))
    return 0


def _call(settings: Settings, args: argparse.Namespace) -> int:
    from mcp_service.client import call_tool, parse_arguments

    _client_settings(settings)
    try:
        arguments = parse_arguments(args.arguments)
    except ValueError as exc:
        print(f"mcp-service call: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    url = args.url or settings.mcp_url
    result = asyncio.run(call_tool(settings, url, args.tool, arguments, args.scope))
    print(json.dumps(result, default=str))
    return 0
