"""Registered clients: what the facade knows of a client, from its registration (DCR, kept
in the shared state) or its Client ID Metadata Document (fetched, cached briefly)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

ApplicationType = Literal["web", "native"]
CLIENT_TTL = 90 * 86_400  # a dynamically registered client is forgotten after 90 days


@dataclass(frozen=True, slots=True)
class Client:
    client_id: str
    name: str
    redirect_uris: tuple[str, ...]
    application_type: ApplicationType
    scope: str | None = None
    metadata_document: bool = False  # the client id is a CIMD URL

    def record(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "name": self.name,
            "redirect_uris": list(self.redirect_uris),
            "application_type": self.application_type,
            "scope": self.scope,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Client:
        return cls(
            client_id=str(record["client_id"]),
            name=str(record["name"]),
            redirect_uris=tuple(record["redirect_uris"]),
            application_type="web" if record["application_type"] == "web" else "native",
            scope=record.get("scope"),
        )
