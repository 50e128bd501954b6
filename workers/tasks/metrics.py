"""Cluster metrics tasks (both beat): a scrape of every running cluster's Ray nodes, and the
minutely rollup and pruning of the tiers (``rayplane.metrics.scrape``). Both are safe to run
twice at once: rows are keyed by cluster, tier and time, and written with ON CONFLICT DO
NOTHING."""

from __future__ import annotations

from rayplane.common.tasks import TaskName
from rayplane.db.base import utcnow
from rayplane.logs import get_logger
from rayplane.metrics.scrape import Scraper
from rayplane.metrics.tiers import tiers
from rayplane.settings import get_settings
from workers.celery_app import app
from workers.db import providers, sessions

log = get_logger("rayplane.workers.metrics")


def _scraper() -> Scraper:
    settings = get_settings()
    return Scraper(sessions(), providers(), tiers(settings.metrics_scrape_seconds, settings.metrics_retention_days))


@app.task(name=TaskName.SCRAPE_METRICS)
def scrape() -> dict[str, int]:
    result = _scraper().scrape(utcnow())
    if result.failed_nodes:
        log.info("metrics_nodes_unanswered", nodes=result.nodes, failed=result.failed_nodes)
    return {"clusters": result.clusters, "written": result.written, "nodes": result.nodes}


@app.task(name=TaskName.METRICS_UPKEEP)
def upkeep() -> dict[str, int]:
    return _scraper().upkeep(utcnow())
