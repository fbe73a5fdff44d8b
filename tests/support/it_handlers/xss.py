"""A handler whose error message is markup: the dashboard must show it as text."""

from __future__ import annotations

from corral import Job, job_handler

XSS_ERROR = "<svg onload=alert(3)>"


@job_handler
async def xss_fail(job: Job) -> None:
    raise Exception(XSS_ERROR)  # a plain exception on purpose
