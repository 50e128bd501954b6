"""Identity: members, roles, API keys and the authenticated principal."""
