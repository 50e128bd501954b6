"""Cloud tasks: validate an Azure cloud's access (nudged by the API after the create commits)."""

from __future__ import annotations

from rayplane.clouds.access import run_validation
from rayplane.settings import get_settings
from workers.celery_app import app
from workers.db import sessions

VALIDATE = "rayplane.clouds.validate"


@app.task(name=VALIDATE, acks_late=True)
def validate(cloud_id: str) -> str | None:
    return run_validation(sessions(), get_settings(), cloud_id)
