"""Audit log: who did what, when, from where, with what result."""
