"""Azure Marketplace SaaS: subscriptions bought there, their lifecycle webhooks, and plans."""
