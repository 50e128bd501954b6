"""The console and the Marketplace landing page: server-rendered pages, an adapter over the core
like ``api/`` (see docs/web.md)."""
