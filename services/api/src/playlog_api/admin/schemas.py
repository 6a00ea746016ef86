from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class WorkerStatus(BaseModel):
    worker_id: str
    service: str
    hostname: str
    pid: int
    version: str
    started_at: datetime
    last_seen_at: datetime
    stopped_at: datetime | None
    activity: str
    alive: bool
    seconds_since_seen: float


class SystemStatus(BaseModel):
    version: str
    migration_current: str | None
    migration_head: str
    workers: list[WorkerStatus]
