"""Jobs: Ray jobs submitted to a cluster through Ray's Jobs REST API."""
