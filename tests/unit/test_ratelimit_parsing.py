"""The parsers in front of the limits: limit strings, X-Forwarded-For chains, client keys, and
the settings that carry them (property-based where the input is open-ended)."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
from typing import Any

import limits
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from starlette.middleware import Middleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from cache.redisline import RedisAddress
from cache.windows import Limit, parse_limits
from mcp_service.limitkeys import address_key
from mcp_service.settings import SettingsError, load_settings

UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86_400}

# Limit strings -------------------------------------------------------------------------------

amounts = st.integers(min_value=1, max_value=10**6)
multiples = st.one_of(st.none(), st.integers(min_value=1, max_value=1000))
units = st.sampled_from(sorted(UNITS))


@st.composite
def limit_items(draw: st.DrawFn) -> tuple[str, int, int]:
    amount, multiple, unit = draw(amounts), draw(multiples), draw(units)
    per = draw(st.sampled_from(["/", " per ", "/ ", " / "]))
    plural = draw(st.booleans()) and multiple is not None
    word = draw(st.sampled_from([unit, unit.upper(), unit.capitalize()])) + ("s" if plural else "")
    text = f"{amount}{per}{'' if multiple is None else f'{multiple} '}{word}"
    return text, amount, (multiple or 1) * UNITS[unit]


@given(
    st.lists(limit_items(), min_size=1, max_size=4, unique_by=lambda item: item[2]),
    st.sampled_from([";", "; ", ","]),
)
def test_limit_strings_parse_as_the_limits_library_reads_them(
    items: list[tuple[str, int, int]], separator: str
) -> None:
    text = separator.join(item[0] for item in items)
    ours = parse_limits(text)
    theirs = sorted((item.amount, item.get_expiry()) for item in limits.parse_many(text))
    assert sorted((limit.amount, limit.window) for limit in ours) == theirs
    assert sorted((a, w) for _, a, w in items) == theirs


@given(st.text(max_size=40))
def test_any_text_either_parses_as_limits_reads_it_or_is_a_value_error(text: str) -> None:
    try:
        ours = parse_limits(text)
    except ValueError:
        return
    theirs = sorted((item.amount, item.get_expiry()) for item in limits.parse_many(text))
    assert sorted((limit.amount, limit.window) for limit in ours) == theirs


@pytest.mark.parametrize(
    "text",
    ["", "600", "600/fortnight", "0/minute", "10/0 minutes", "-1/minute", "1e3/minute",
     "10/minute;20/minute", "1/second;2/minute;3/hour;4/day;5/2 days", "600/minute junk"],
)  # fmt: skip
def test_bad_limit_strings_are_refused(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 -- the message is the settings error's
        parse_limits(text)


def test_limits_are_ordered_from_the_shortest_window() -> None:
    assert parse_limits("600/minute; 10/second") == (Limit(10, 1), Limit(600, 60))


# X-Forwarded-For: one rule, uvicorn's proxy-headers middleware, as the service declares it ------

TRUSTED = ["10.0.0.0/8", "fd00::/8"]
trusted_v4 = st.ip_addresses(v=4, network="10.0.0.0/8").map(str)
untrusted_v4 = st.ip_addresses(v=4).filter(lambda ip: ip not in ipaddress.ip_network("10.0.0.0/8"))
untrusted = st.one_of(
    untrusted_v4.map(str),
    st.ip_addresses(v=6).filter(lambda ip: ip not in ipaddress.ip_network("fd00::/8")).map(str),
)
junk = st.text(alphabet=st.characters(codec="latin-1"), max_size=30)


@functools.cache
def proxy_layers(trusted: str) -> list[Middleware]:
    """The service's proxy-headers layers (at most one) for TRUSTED_PROXIES=trusted."""
    from tests.support.service import make_service

    service = make_service(trusted_proxies=trusted)
    return [layer for layer in service.layers if layer.cls is ProxyHeadersMiddleware]


def client_seen(peer: str, lines: list[bytes]) -> str:
    """The client address the layers inside see behind the service's proxy-headers layer."""
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["client"][0])

    [layer] = proxy_layers(",".join(TRUSTED))
    wrapped = layer.cls(app, *layer.args, **layer.kwargs)
    headers = [(b"x-forwarded-for", line) for line in lines]
    scope = {"type": "http", "client": (peer, 4711), "headers": headers}
    asyncio.run(wrapped(scope, None, None))
    return seen[0]


def header(*hops: str) -> list[bytes]:
    return [", ".join(hops).encode("latin-1")]


@given(peer=untrusted, hops=st.lists(st.one_of(untrusted, trusted_v4, junk), max_size=6))
def test_an_untrusted_peer_is_the_client_whatever_it_forwards(peer: str, hops: list[str]) -> None:
    assert client_seen(peer, header(*hops)) == peer


@given(
    client=untrusted,
    forged=st.lists(st.one_of(untrusted, trusted_v4, junk), max_size=5),
    proxies=st.lists(trusted_v4, max_size=4),
    peer=trusted_v4,
)
def test_behind_trusted_proxies_the_client_is_the_rightmost_untrusted_hop(
    client: str, forged: list[str], proxies: list[str], peer: str
) -> None:
    assume(all("," not in hop for hop in forged))
    assert client_seen(peer, header(*forged, client, *proxies)) == client


@given(client=untrusted, proxies=st.lists(trusted_v4, min_size=1, max_size=3), peer=trusted_v4)
def test_a_chain_split_over_several_header_lines_reads_the_same(
    client: str, proxies: list[str], peer: str
) -> None:
    lines = [client.encode(), *(p.encode() for p in proxies)]
    assert client_seen(peer, lines) == client


def test_addresses_with_ports_and_brackets_are_read() -> None:
    assert client_seen("10.0.0.1", header("203.0.113.9:4711")) == "203.0.113.9"
    assert client_seen("10.0.0.1", header("[2001:db8::7]:4711")) == "2001:db8::7"


def test_when_every_hop_is_trusted_the_leftmost_is_the_client() -> None:
    assert client_seen("10.0.0.1", header("10.9.9.9", "10.0.0.2")) == "10.9.9.9"


def test_without_trusted_proxies_there_is_no_proxy_headers_layer() -> None:
    assert proxy_layers("") == []


# Client keys ------------------------------------------------------------------------------------


@given(st.ip_addresses(v=6), st.integers(min_value=0, max_value=2**64 - 1))
def test_ipv6_clients_in_one_64_share_a_key(address: ipaddress.IPv6Address, host: int) -> None:
    assume(address.ipv4_mapped is None)
    sibling = ipaddress.IPv6Address((int(address) >> 64 << 64) | host)
    assume(sibling.ipv4_mapped is None)
    assert address_key(str(address)) == address_key(str(sibling))


def test_ipv6_clients_in_different_64s_do_not() -> None:
    assert address_key("2001:db8:0:1::5") != address_key("2001:db8:0:2::5")


@given(st.ip_addresses(v=4))
def test_an_ipv4_client_is_its_address(address: ipaddress.IPv4Address) -> None:
    assert address_key(str(address)) == str(address)
    assert address_key(f"::ffff:{address}") == str(address)


# Settings ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RATE_LIMIT", "600/fortnight"),
        ("RATE_LIMIT", ""),
        ("RATE_LIMIT_GROUPS", '{"premium": "lots"}'),
        ("RATE_LIMIT_GROUPS", "premium=6000/minute"),
        ("RATE_LIMIT_TOOL_COSTS", '{"add": 0}'),
        ("RATE_LIMIT_TOOL_COSTS", '{"add": "five"}'),
        ("RATE_LIMIT_TOOL_COSTS", '{"add": 601}'),
        ("RATE_LIMIT_FALLBACK", "half"),
        ("RATE_LIMIT_FAILURE_MODE", "sometimes"),
        ("RATE_LIMIT_REDIS_TIMEOUT_SECONDS", "0"),
        ("IP_RATE_LIMIT", "many/second"),
        ("TRUSTED_PROXIES", "10.0.0.0/8, the-load-balancer"),
        ("MAX_IN_FLIGHT", "-1"),
        ("TOOL_TIMEOUT_SECONDS", "-5"),
    ],
)
def test_a_bad_rate_limit_setting_is_one_problem_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None)
    assert [name for name, _ in caught.value.problems] == [variable]


def test_a_tool_cost_must_fit_every_tier_and_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATE_LIMIT_GROUPS", '{"trial": "3/minute"}')
    monkeypatch.setenv("RATE_LIMIT_TOOL_COSTS", '{"get_user_info": 5}')
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None)
    assert caught.value.problems[0][0] == "RATE_LIMIT_TOOL_COSTS"
    assert "could never be called" in caught.value.problems[0][1]


def test_rate_limit_settings_have_production_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.processes import SETTING_NAMES

    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(_env_file=None)
    assert settings.rate_limit == "600/minute"
    assert settings.rate_limit_failure_mode == "open"
    assert settings.ip_rate_limit == "100/second"
    assert settings.max_in_flight == 256
    assert settings.tool_timeout_seconds == 25
    assert settings.rate_limit_prefix == "mcp:v1:rl:"


def test_rate_limit_keys_live_under_the_redis_key_prefix() -> None:
    settings = load_settings(_env_file=None, redis_key_prefix="tenant")
    assert settings.rate_limit_prefix == "tenant:v1:rl:"


def test_an_explicit_rate_limit_key_prefix_wins() -> None:
    settings = load_settings(
        _env_file=None, redis_key_prefix="tenant", rate_limit_key_prefix="tenant:limits:"
    )
    assert settings.rate_limit_prefix == "tenant:limits:"


@pytest.mark.parametrize("value", ["127.0.0.1/8", "10.1.2.3/16", "fd00::1/64"])
def test_trusted_proxies_with_host_bits_set_are_refused(value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None, trusted_proxies=value)
    [(variable, message)] = caught.value.problems
    assert variable == "TRUSTED_PROXIES"
    assert "host bits" in message


def test_off_switches_a_limit_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATE_LIMIT", "Off")
    monkeypatch.setenv("IP_RATE_LIMIT", "off")
    settings = load_settings(_env_file=None)
    assert (settings.rate_limit, settings.ip_rate_limit) == ("off", "off")


# Redis URLs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "redis://cache.internal",
        "redis://:s%40cret@cache:6380/2",
        "redis://cache:6379?db=5",
        "rediss://app:pw@master.x.cache.amazonaws.com:6379",
        "unix:///run/redis.sock?db=3",
    ],
)
def test_redis_urls_are_read_as_redis_py_reads_them(url: str) -> None:
    from redis.connection import SSLConnection, parse_url

    theirs = parse_url(url)
    ours = RedisAddress.from_url(url)
    assert (ours.port, ours.db, ours.username, ours.password, ours.path) == (
        theirs.get("port", 6379),
        theirs.get("db", 0),
        theirs.get("username") or "",
        theirs.get("password") or "",
        theirs.get("path", ""),
    )
    assert ours.tls == (theirs.get("connection_class") is SSLConnection)
    if "host" in theirs:
        assert ours.host == theirs["host"]
