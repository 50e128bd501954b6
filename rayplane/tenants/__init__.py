"""Tenants: customer organisations."""
