"""The authorization server facade over Cognito: an OAuth 2.1 server of this service's own that
MCP clients register with (DCR or Client ID Metadata Documents) and log a person in through,
while the person signs in at Cognito's managed login. docs/oauth.md describes the flow."""
