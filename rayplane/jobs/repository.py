"""All SQL touching ``jobs`` on the API side."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.jobs.models import Job


class JobRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, tenant_id: str, cluster_id: str, job_id: str) -> Job | None:
        stmt = select(Job).where(Job.tenant_id == tenant_id, Job.cluster_id == cluster_id, Job.id == job_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def get_by_submission(self, cluster_id: str, submission_id: str) -> Job | None:
        stmt = select(Job).where(Job.cluster_id == cluster_id, Job.submission_id == submission_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def list(self, tenant_id: str, cluster_id: str, *, after: str | None, limit: int) -> list[Job]:
        stmt = select(Job).where(Job.tenant_id == tenant_id, Job.cluster_id == cluster_id)
        if after is not None:
            stmt = stmt.where(Job.id > after)
        return list((await self.session.execute(stmt.order_by(Job.id).limit(limit + 1))).scalars())

    async def add(self, job: Job) -> Job:
        self.session.add(job)
        await self.session.flush()
        return job
