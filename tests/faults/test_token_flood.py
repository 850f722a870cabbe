"""A flood of junk and attack tokens from one client, mixed with valid calls from another,
across three replicas sharing Redis.

Valid calls all succeed. Every junk token is refused with 401 and the reason its flaw calls for,
or with 429 once the per-IP limit sheds the flood before verification; never 200, never 5xx.
And the random kids among them do not hammer the IdP: the fleet refreshes the JWKS at most once
per kid-miss cooldown window (README, "Shared caches").
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx
import pytest

from tests.faults.replicas import SECRET, running_replicas
from tests.support.load import BackgroundLoad, Call, add_call
from tests.support.pool import JWKS_PATH, bearer_headers, call_add, pool_env
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
SECONDS = 6.0
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


def refused_for(reasons: set[str]) -> Callable[[httpx.Response], bool]:
    def expect(response: httpx.Response) -> bool:
        if response.status_code == 429:
            return True  # shed by the per-IP limit, before the token was looked at
        return response.status_code == 401 and response.json().get("reason") in reasons

    return expect


def test_a_junk_flood_is_refused_while_valid_calls_succeed_and_the_idp_is_spared(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    jwks = JwksServer(jwks_of(rsa_key()), JWKS_PATH)
    env = pool_env(
        jwks.url,
        REDIS_URL=redis_url,
        REDIS_KEY_PREFIX=redis_prefix,
        RATE_LIMIT_KEY_PREFIX=f"{redis_prefix}:rl:",
        TOKEN_CACHE_SECRET=SECRET,  # the shared JWKS, and its fleet-wide kid-miss window
        JWKS_KID_MISS_COOLDOWN_SECONDS=str(COOLDOWN),
        IP_RATE_LIMIT="40/second",  # per replica: the flood is shed, the valid client is not
    )
    factory = TokenFactory()
    valid_tokens = [factory.token(sub=f"user-{n % 30}") for n in range(150)]
    kinds = junk_kinds()
    names = sorted(kinds)
    with jwks.running(), running_replicas(env, tmp_path, 3) as replicas:
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
        flood = BackgroundLoad(junk, concurrency=12, duration=SECONDS, local_address=ATTACKER)
        with legit, flood:
            good, bad = legit.report(timeout=60, stop=False), flood.report(timeout=60, stop=False)
        fetches = jwks.requests - fetches_before

    assert good.of("valid") and not good.unexpected(), good.summary()
    assert not bad.unexpected(), bad.summary()
    for name in names:  # every kind reached verification, and none got anything but 401/429
        statuses = bad.statuses(name)
        assert statuses[401] > 0, (name, statuses)
        assert set(statuses) <= {401, 429}, (name, statuses)
    assert bad.statuses()[429] > 0  # the flood was heavy enough to meet the per-IP limit
    elapsed = max(good.ended, bad.ended) - min(good.started, bad.started)
    windows = math.ceil(elapsed / COOLDOWN) + 1
    assert 1 <= fetches <= windows, (fetches, elapsed, bad.statuses("random_kid"))
