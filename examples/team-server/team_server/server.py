"""The team's tools, resources and prompts, written the ordinary FastMCP way.

Nothing here knows about Cognito, rate limits or metrics: mcp-service serves this server behind
all of them. The caller is read with FastMCP's `get_access_token()` (the verified Cognito
token); `deploy` is for the Cognito group TOOL_GROUPS names (`{"deploy": ["ops"]}`).
"""

from __future__ import annotations

from typing import Any

from fastmcp import Context, FastMCP
from fastmcp.server.dependencies import get_access_token
from mcp.types import ToolAnnotations

RUNBOOKS = {
    "db-failover": "Promote the replica, then repoint the writers.",
    "cache-flush": "Drain, flush, refill.",
}


def create_server() -> FastMCP[Any]:
    mcp: FastMCP[Any] = FastMCP("team-server", instructions="Runbooks and deployments of the team.")

    @mcp.tool(annotations=ToolAnnotations(read_only_hint=True))
    async def find_runbook(topic: str, ctx: Context) -> list[str]:
        """Names of the runbooks whose name mentions `topic`."""
        found = sorted(name for name in RUNBOOKS if topic.lower() in name)
        await ctx.report_progress(len(found), len(RUNBOOKS))  # FastMCP's Context, as usual
        return found

    @mcp.tool
    def whoami() -> dict[str, Any]:
        """The verified caller: subject and Cognito groups."""
        token = get_access_token()
        claims = token.claims if token is not None else {}
        return {"subject": claims.get("sub"), "groups": claims.get("cognito:groups", [])}

    @mcp.tool(annotations=ToolAnnotations(destructive_hint=True, idempotent_hint=False))
    def deploy(service: str, version: str) -> str:
        """Deploy `version` of `service` (for the ops group: TOOL_GROUPS)."""
        return f"deploying {service} {version}"

    @mcp.resource("runbooks://index")
    def index() -> list[str]:
        """Every runbook's name."""
        return sorted(RUNBOOKS)

    @mcp.resource("runbooks://{name}")
    def runbook(name: str) -> str:
        """One runbook's text."""
        return RUNBOOKS.get(name, "no such runbook")

    @mcp.prompt
    def incident_review(summary: str) -> str:
        """A prompt for a blameless incident review."""
        return f"Write a blameless review of this incident: {summary}"

    return mcp
