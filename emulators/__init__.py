"""Stand-ins for external services that Rayplane talks to, used by tests and local runs."""
