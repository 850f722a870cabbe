"""`python -m mcp_service` is the `mcp-service` command."""

from mcp_service.cli import main

raise SystemExit(main())
