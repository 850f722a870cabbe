"""TLS to Redis, decided once for every connection a process opens to it.

The URL's own `ssl_*` parameters (`ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile`,
`ssl_cert_reqs`, `ssl_check_hostname`, as redis-py reads them) and the REDIS_TLS_* settings are
merged here, a setting winning over the URL, into one `RedisTls`. redis-py's clients get it as
keyword arguments (the URL they see has the `ssl_*` parameters removed, so they cannot disagree)
and the rate limiter's RESP connections as an `ssl.SSLContext`: a private CA trusted by one
path is trusted by all of them.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

Verify = Literal["required", "none"]
URL_PARAMETERS = (
    "ssl_ca_certs",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_cert_reqs",
    "ssl_check_hostname",
)
_FALSE = ("0", "false", "no", "off", "n", "f")


@dataclass(frozen=True, slots=True)
class RedisTls:
    """How to open TLS to Redis: the CA bundle (empty: the system trust store), a client
    certificate and key (mutual TLS), and whether the server's certificate is checked."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    verify: bool = True
    check_hostname: bool = True

    @classmethod
    def of(
        cls,
        url: str,
        *,
        ca_file: str = "",
        cert_file: str = "",
        key_file: str = "",
        verify: Verify | None = None,
    ) -> RedisTls | None:
        """The TLS of a `rediss://` URL (None for any other): settings first, then the URL's
        `ssl_*` parameters, then the defaults (system trust store, verified, hostname checked).
        """
        parts = urlsplit(url)
        if parts.scheme != "rediss":
            return None
        query = dict(parse_qsl(parts.query))
        reqs = query.get("ssl_cert_reqs", "required").lower()
        checked = verify != "none" if verify is not None else reqs not in ("none", "cert_none")
        hostname = query.get("ssl_check_hostname", "true").lower() not in _FALSE
        return cls(
            ca_file=ca_file or query.get("ssl_ca_certs", ""),
            cert_file=cert_file or query.get("ssl_certfile", ""),
            key_file=key_file or query.get("ssl_keyfile", ""),
            verify=checked,
            check_hostname=checked and hostname,
        )

    def context(self) -> ssl.SSLContext:
        """An `SSLContext` for the RESP connections (raises OSError or ssl.SSLError for a file
        that cannot be read or parsed)."""
        context = ssl.create_default_context(cafile=self.ca_file or None)
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file or None)
        context.check_hostname = self.check_hostname
        if not self.verify:
            context.verify_mode = ssl.CERT_NONE
        return context

    def redis_kwargs(self) -> dict[str, Any]:
        """The same, as redis-py's connection keyword arguments."""
        return {
            "ssl_ca_certs": self.ca_file or None,
            "ssl_certfile": self.cert_file or None,
            "ssl_keyfile": self.key_file or None,
            "ssl_cert_reqs": "required" if self.verify else "none",
            "ssl_check_hostname": self.check_hostname,
        }


def without_tls_parameters(url: str) -> str:
    """`url` without the `ssl_*` parameters `RedisTls` took over (redis-py lets a URL's own
    parameters override its keyword arguments)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in URL_PARAMETERS]
    return urlunsplit(parts._replace(query=urlencode(query)))


def describe(error: BaseException) -> str:
    """What a log line says about a failed Redis call: the error's type, and for a certificate
    that is not trusted, why (a bare `ConnectionError` leaves an operator guessing). Nothing
    else of the message: it could repeat a command's arguments."""
    name = type(error).__name__
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            reason = getattr(current, "verify_message", "") or "certificate verify failed"
            return f"{name}: TLS certificate not trusted ({reason})"
        text = str(current)
        marker = "certificate verify failed"
        if marker in text:
            reason = text.split(marker, 1)[1].strip(" :()").split("(")[0].strip()
            return f"{name}: TLS certificate not trusted ({reason or marker})"
        current = current.__cause__ or current.__context__
    return name
