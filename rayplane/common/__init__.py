"""Cross-cutting pieces shared by every domain package: errors, paging, idempotency."""
