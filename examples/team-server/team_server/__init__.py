"""A team's MCP server: `mcp-service serve --app team_server.server:create_server`."""
