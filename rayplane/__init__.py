"""Rayplane core: the domain, independent of FastAPI and Celery."""

__version__ = "0.1.0"
