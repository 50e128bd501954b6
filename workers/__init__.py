"""Celery adapter: tasks take ids, open a unit of work and call the core."""
