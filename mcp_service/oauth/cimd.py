"""Client ID Metadata Documents: a client id that is an https URL names the document that
describes the client, fetched from there.

The fetch is FastMCP's SSRF-safe one in shape (fastmcp.server.auth.ssrf: resolve first,
refuse any address that is not global unicast, connect to the address checked with Host and
SNI pinned, no redirects, a size cap, an overall timeout) and the document is validated by
FastMCP's `CIMDDocument`. It is written here rather than called because two test settings
must reach into it: CIMD_ALLOW_LOOPBACK (loopback addresses allowed, private and link-local
still refused) and CIMD_CA_FILE (the authorities trusted), both refused in production.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from fastmcp.server.auth.cimd import CIMDDocument
from fastmcp.server.auth.ssrf import SSRFError, format_ip_for_url, is_ip_allowed, resolve_hostname

from mcp_service.oauth.clients import Client
from mcp_service.oauth.redirects import registration_problem

MAX_DOCUMENT_BYTES = 5120  # FastMCP's CIMDFetcher bound: a client document is small
FETCH_SECONDS = 5.0
CACHE_SECONDS = 300.0
CACHE_ENTRIES = 1000


class MetadataDocumentError(Exception):
    """The client id's document could not be used; the message is safe to show the client."""


def is_metadata_url(client_id: str) -> bool:
    """Whether a client id names a metadata document: https with a path beyond the root."""
    try:
        parts = urlsplit(client_id)
    except ValueError:
        return False
    return parts.scheme == "https" and bool(parts.netloc) and parts.path not in ("", "/")


class MetadataDocuments:
    def __init__(
        self,
        *,
        allow_loopback: bool = False,
        ca_file: Path | None = None,
        timeout: float = FETCH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.allow_loopback = allow_loopback
        self.timeout = timeout
        self._verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
        )
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, Client]] = OrderedDict()

    async def client(self, url: str) -> Client:
        cached = self._cache.get(url)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        client = parse_document(await self.fetch(url), url)
        self._cache[url] = (self._clock() + CACHE_SECONDS, client)
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return client

    def _allowed(self, address: str) -> bool:
        if is_ip_allowed(address):
            return True
        return self.allow_loopback and ipaddress.ip_address(address).is_loopback

    async def fetch(self, url: str) -> bytes:
        """The document's bytes, or `MetadataDocumentError`."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self._fetch(url)
        except TimeoutError:
            raise MetadataDocumentError("the client metadata document timed out") from None

    async def _fetch(self, url: str) -> bytes:
        parts = urlsplit(url)
        if not is_metadata_url(url) or parts.username or parts.password or parts.fragment:
            raise MetadataDocumentError("a client id URL must be https with a path")
        host = parts.hostname or ""
        port = parts.port or 443
        try:
            addresses = await resolve_hostname(host, port)
        except SSRFError:
            raise MetadataDocumentError("the client id's host does not resolve") from None
        if not all(self._allowed(address) for address in addresses):
            raise MetadataDocumentError("the client id's host is not a public address")
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        failure = "the client metadata document could not be fetched"
        async with httpx.AsyncClient(
            verify=self._verify, follow_redirects=False, trust_env=False, timeout=self.timeout
        ) as http:
            for address in addresses:
                pinned = f"https://{format_ip_for_url(address)}:{port}{target}"
                try:
                    async with http.stream(
                        "GET",
                        pinned,
                        headers={"Host": parts.netloc, "Accept": "application/json"},
                        extensions={"sni_hostname": host},
                    ) as response:
                        if response.status_code != 200:
                            raise MetadataDocumentError(
                                f"the client metadata document answered {response.status_code}"
                            )
                        declared = response.headers.get("content-length", "")
                        if declared.isdigit() and int(declared) > MAX_DOCUMENT_BYTES:
                            raise MetadataDocumentError("the client metadata document is too large")
                        chunks: list[bytes] = []
                        size = 0
                        async for chunk in response.aiter_bytes():
                            size += len(chunk)
                            if size > MAX_DOCUMENT_BYTES:
                                raise MetadataDocumentError(
                                    "the client metadata document is too large"
                                )
                            chunks.append(chunk)
                        return b"".join(chunks)
                except httpx.HTTPError:
                    continue
        raise MetadataDocumentError(failure)


def parse_document(raw: bytes, url: str) -> Client:
    """The client a metadata document describes, held to the rules a registration is."""
    try:
        data = json.loads(raw)
        document = CIMDDocument.model_validate(data)
    except (ValueError, RecursionError):
        raise MetadataDocumentError("the client metadata document is not valid") from None
    if str(data.get("client_id")) != url:
        raise MetadataDocumentError("the document's client_id is not the URL it came from")
    if document.token_endpoint_auth_method != "none":
        raise MetadataDocumentError("only public clients (token_endpoint_auth_method none)")
    application_type = data.get("application_type", "native")
    if application_type not in ("web", "native"):
        raise MetadataDocumentError("application_type must be web or native")
    for uri in document.redirect_uris:
        problem = registration_problem(uri, application_type)
        if problem is not None or "*" in uri:
            raise MetadataDocumentError(problem or "a redirect URI may not hold a wildcard")
    return Client(
        client_id=url,
        name=(document.client_name or urlsplit(url).netloc)[:200],
        redirect_uris=tuple(document.redirect_uris),
        application_type=application_type,
        scope=document.scope,
        metadata_document=True,
    )
