"""A FastMCP app serving the MCP conformance suite's test tools, resources and prompts.

    python -m tests.support.conformance fast|plain PORT

`plain` is FastMCP's own stateless JSON app; `fast` is the same app with the fast path
innermost in `http_app(middleware=...)`. No authentication: the suite sends no token.
"""

from __future__ import annotations

import asyncio
import base64
import sys
from typing import Any

from fastmcp import Context, FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.prompts import Message
from fastmcp.utilities.types import Audio, Image
from mcp.types import EmbeddedResource, ImageContent, TextContent, TextResourceContents

# A 1x1 PNG and a tiny WAV header: what the suite checks is the content's shape.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
WAV = (
    b"RIFF$\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00D\xac\x00\x00"
    b"\x88X\x01\x00\x02\x00\x10\x00data\x00\x00\x00\x00"
)


def _resource(uri: str, text: str) -> EmbeddedResource:
    return EmbeddedResource(
        type="resource", resource=TextResourceContents(uri=uri, mimeType="text/plain", text=text)
    )


def conformance_server() -> FastMCP[Any]:
    mcp: FastMCP[Any] = FastMCP("conformance")

    @mcp.tool
    def test_simple_text() -> str:
        """Simple text."""
        return "This is a simple text response for testing."

    @mcp.tool
    def test_image_content() -> Image:
        """An image."""
        return Image(data=PNG, format="png")

    @mcp.tool
    def test_audio_content() -> Audio:
        """Audio."""
        return Audio(data=WAV, format="wav")

    @mcp.tool
    def test_embedded_resource() -> EmbeddedResource:
        """An embedded resource."""
        return _resource("test://embedded-resource", "This is an embedded resource content.")

    @mcp.tool
    def test_multiple_content_types() -> list[Any]:
        """Text, an image and a resource."""
        return [
            TextContent(type="text", text="Multiple content types test:"),
            ImageContent(type="image", data=base64.b64encode(PNG).decode(), mimeType="image/png"),
            _resource("test://mixed-content-resource", '{"test": "data", "value": 123}'),
        ]

    @mcp.tool
    async def test_tool_with_logging(ctx: Context) -> str:
        """Logs three messages."""
        for message in ("Tool execution started", "Tool processing data", "Tool completed"):
            await ctx.info(message)
            await asyncio.sleep(0.05)
        return "Tool with logging executed successfully"

    @mcp.tool
    async def test_tool_with_progress(ctx: Context) -> str:
        """Reports progress."""
        for done in (0, 50, 100):
            await ctx.report_progress(done, 100)
            await asyncio.sleep(0.05)
        return "Tool with progress executed successfully"

    @mcp.tool
    def test_error_handling() -> str:
        """Always fails."""
        raise ToolError("This tool intentionally returns an error for testing")

    @mcp.tool
    async def test_sampling(prompt: str, ctx: Context) -> str:
        """Asks the client's model."""
        answer = await ctx.sample(prompt, max_tokens=100)
        return f"LLM response: {answer.text}"

    @mcp.tool
    async def test_elicitation(message: str, ctx: Context) -> str:
        """Asks the user."""
        result = await ctx.elicit(message, response_type=str)
        return f"User response: {result}"

    @mcp.resource("test://static-text", mime_type="text/plain")
    def static_text() -> str:
        return "This is the content of the static text resource."

    @mcp.resource("test://static-binary", mime_type="image/png")
    def static_binary() -> bytes:
        return PNG

    @mcp.resource("test://template/{id}/data", mime_type="application/json")
    def template(id: str) -> str:
        return f'{{"id": "{id}", "templateTest": true, "data": "Data for ID: {id}"}}'

    @mcp.resource("test://example-resource", mime_type="text/plain")
    def example() -> str:
        return "An example resource."

    @mcp.prompt
    def test_simple_prompt() -> str:
        """A simple prompt."""
        return "This is a simple prompt for testing."

    @mcp.prompt
    def test_prompt_with_arguments(arg1: str, arg2: str) -> str:
        """A prompt with arguments."""
        return f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"

    @mcp.prompt
    def test_prompt_with_embedded_resource(resourceUri: str) -> list[Message]:
        """A prompt with a resource."""
        return [
            Message(_resource(resourceUri, "Embedded resource content for testing.")),
            Message("Please process the embedded resource above."),
        ]

    @mcp.prompt
    def test_prompt_with_image() -> list[Message]:
        """A prompt with an image."""
        image = ImageContent(
            type="image", data=base64.b64encode(PNG).decode(), mimeType="image/png"
        )
        return [Message(image), Message("Please analyze the image above.")]

    return mcp


def conformance_app(fast: bool) -> Any:
    from mcp_service.fastpath import fast_path_layers

    mcp = conformance_server()
    layers = fast_path_layers(mcp, "/mcp") if fast else []
    return mcp.http_app(path="/mcp", stateless_http=True, json_response=True, middleware=layers)


def main() -> None:
    import uvicorn

    variant, port = sys.argv[1], int(sys.argv[2])
    uvicorn.run(
        conformance_app(variant == "fast"), host="127.0.0.1", port=port, log_level="warning"
    )


if __name__ == "__main__":
    main()
