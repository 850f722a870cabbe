"""A flood of junk and attack tokens from one client, mixed with valid calls from another,
across three replicas sharing Redis.

Valid calls all succeed. Every junk token is refused with 401 and the reason its flaw calls for,
or with 429 once the per-IP limit sheds the flood before verification; never 200, never 5xx.
And the random kids among them do not hammer the IdP: the fleet refreshes the JWKS at most once
per kid-miss cooldown window (docs/redis.md, "What is shared").
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import httpx
import pytest

from tests.faults.replicas import delete_keys, fleet_env, running_replicas
from tests.support.load import BackgroundLoad, Call, LoadReport, add_call
from tests.support.pool import JWKS_PATH, bearer_headers, call_add
from tests.support.processes import JwksServer
from tests.support.tokens import (
    OTHER_CLIENT_ID,
    TokenFactory,
    b64,
    b64json,
    jwks_of,
    kid_of,
    public_pem,
    rsa_key,
)

pytestmark = pytest.mark.redis

COOLDOWN = 1.0
SECONDS = 4.0
VALID_CLIENT, ATTACKER = "127.0.0.1", "127.0.0.2"  # two client addresses on loopback


def junk_kinds() -> dict[str, tuple[Callable[[], str], set[str]]]:
    """Each kind of junk: a maker of such tokens, and the reasons its refusal may give."""
    key = rsa_key()
    kid = kid_of(key)
    factory = TokenFactory()
    claims = factory.claims()
    hs_input = f"{b64json({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{b64json(claims)}"
    hs_signature = hmac.new(public_pem(key), hs_input.encode(), hashlib.sha256).digest()
    signed = factory.token().split(".")
    other_pool = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_OtherPool9"
    fixed = {
        "alg_none": factory.unsigned({"alg": "none", "kid": kid}, claims),
        "alg_none_signed": factory.unsigned({"alg": "none", "kid": kid}, claims, signed[2]),
        "hs256_with_the_public_key": f"{hs_input}.{b64(hs_signature)}",
        "expired": factory.token(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600),
        "wrong_issuer": TokenFactory(issuer=other_pool).token(),
        "wrong_client": TokenFactory(client_id=OTHER_CLIENT_ID).token(),
        "id_token": factory.token("id"),
        "forged_signature": factory.token(key=rsa_key("attacker")),
        "oversized": factory.token(padding="x" * 17_000),  # MAX_TOKEN_BYTES is 16384
    }

    def garbage() -> str:
        return secrets.choice(
            ["not-a-jwt", secrets.token_urlsafe(40), f"{b64(secrets.token_bytes(30))}.e30.AA"]
        )

    def random_kid() -> str:  # the attacker need not sign: the kid is looked up first
        header = b64json({"alg": "RS256", "kid": uuid.uuid4().hex})
        return f"{header}.{signed[1]}.{signed[2]}"

    reasons = {
        # "x.y." has an empty signature segment, which is refused as malformed before the
        # algorithm is read; "x.y.z" is refused for its algorithm
        "alg_none": {"unsupported_alg", "malformed"},
        "alg_none_signed": {"unsupported_alg"},
        "hs256_with_the_public_key": {"unsupported_alg"},
        "expired": {"expired"},
        "wrong_issuer": {"wrong_issuer"},
        "wrong_client": {"wrong_client"},
        "id_token": {"wrong_token_use"},
        "forged_signature": {"bad_signature"},
        "oversized": {"oversized"},
    }
    kinds: dict[str, tuple[Callable[[], str], set[str]]] = {
        name: (partial(str, token), reasons[name]) for name, token in fixed.items()
    }
    kinds["garbage"] = (garbage, {"malformed"})
    kinds["random_kid"] = (random_kid, {"unknown_kid"})
    return kinds


JUNK = (  # the kinds junk_kinds() makes, named here so tests can be parametrized on them
    "alg_none",
    "alg_none_signed",
    "expired",
    "forged_signature",
    "garbage",
    "hs256_with_the_public_key",
    "id_token",
    "oversized",
    "random_kid",
    "wrong_client",
    "wrong_issuer",
)


def refused_for(reasons: set[str]) -> Callable[[httpx.Response], bool]:
    def expect(response: httpx.Response) -> bool:
        if response.status_code == 429:
            return True  # shed by the per-IP limit, before the token was looked at
        return response.status_code == 401 and response.json().get("reason") in reasons

    return expect


@dataclass
class Flood:
    valid: LoadReport  # from VALID_CLIENT
    junk: LoadReport  # from ATTACKER, one kind of junk token per outcome kind
    jwks_fetches: int  # fetches from the IdP during the flood, fleet-wide


@pytest.fixture(scope="module")
def flood(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Flood]:
    cwd = tmp_path_factory.mktemp("flood")
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    jwks = JwksServer(jwks_of(rsa_key()), JWKS_PATH)
    env = fleet_env(
        jwks.url,
        redis_url,
        prefix,  # the shared JWKS, and its fleet-wide kid-miss window
        JWKS_KID_MISS_COOLDOWN_SECONDS=str(COOLDOWN),
        IP_RATE_LIMIT="40/second",  # per replica: the flood is shed, the valid client is not
    )
    factory = TokenFactory()
    valid_tokens = [factory.token(sub=f"user-{n % 30}") for n in range(150)]
    kinds = junk_kinds()
    names = sorted(kinds)
    assert tuple(names) == JUNK
    try:
        with jwks.running(), running_replicas(env, cwd, 3) as replicas:
            for replica in replicas:  # keys loaded everywhere before the flood starts
                assert call_add(replica.url, valid_tokens[0]).status_code == 200
            time.sleep(COOLDOWN)
            fetches_before = jwks.requests

            def valid(n: int) -> Call:
                return add_call(replicas[n % 3].url, valid_tokens[n % len(valid_tokens)])

            def junk(n: int) -> Call:
                name = names[n % len(names)]
                make, reasons = kinds[name]
                return Call(
                    f"{replicas[n % 3].url}/mcp",
                    bearer_headers(make()),
                    kind=name,
                    expect=refused_for(reasons),
                )

            legit = BackgroundLoad(
                valid, concurrency=4, rate=40, duration=SECONDS, local_address=VALID_CLIENT
            )
            attack = BackgroundLoad(junk, concurrency=12, duration=SECONDS, local_address=ATTACKER)
            with legit, attack:
                good = legit.report(timeout=60, stop=False)
                bad = attack.report(timeout=60, stop=False)
            yield Flood(good, bad, jwks.requests - fetches_before)
    finally:
        delete_keys(redis_url, f"{prefix}:*")


def test_valid_calls_all_succeed_during_the_flood(flood: Flood) -> None:
    assert flood.valid.of("valid"), flood.valid.summary()
    assert not flood.valid.unexpected(), flood.valid.summary()


@pytest.mark.parametrize("kind", JUNK)
def test_each_kind_of_junk_gets_401_for_its_flaw_or_429_never_anything_else(
    flood: Flood, kind: str
) -> None:
    statuses = flood.junk.statuses(kind)
    assert statuses[401] > 0, statuses  # it reached verification, and was refused
    assert not flood.junk.unexpected(kind), flood.junk.summary(kind)


def test_the_per_ip_limit_sheds_the_flood(flood: Flood) -> None:
    assert flood.junk.statuses()[429] > 0, flood.junk.summary()


def test_random_kids_cost_at_most_one_jwks_fetch_per_cooldown_window_fleet_wide(
    flood: Flood,
) -> None:
    elapsed = max(flood.valid.ended, flood.junk.ended) - min(
        flood.valid.started, flood.junk.started
    )
    windows = math.ceil(elapsed / COOLDOWN) + 1
    assert flood.junk.statuses("random_kid")[401] > windows  # many misses reached the cache
    assert 1 <= flood.jwks_fetches <= windows, (flood.jwks_fetches, elapsed)
