"""argilla-server's background jobs, run on the server's own event loop instead of Redis + an rq worker.

argilla-server enqueues rq jobs (e.g. recomputing every record's status after the task distribution changes).
rq's synchronous mode cannot run them inside uvicorn (it starts a second event loop in a running one), so we keep
rq's bookkeeping (job ids, statuses and results live in an in-process fakeredis, which `GET /api/v1/jobs/{id}`
reads) and run the job coroutine as a task on the running loop, with rq's retry count honoured.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import sys
import traceback
from types import ModuleType
from typing import Any

WORKER_NAME = "codigit-in-process"
RESULT_TTL = 500  # seconds, as rq's default
_LOGGER = logging.getLogger("codigit.jobs")
_tasks: set[asyncio.Task] = set()


def install_in_process(queues: ModuleType) -> None:
    """Point argilla-server's queues at an in-process Redis and run what they receive on the current loop."""
    import fakeredis

    # private: listed in codigit/upstream.py
    connection = fakeredis.FakeStrictRedis()
    # modules that did `from argilla_server.jobs.queues import REDIS_CONNECTION` hold their own reference
    for name, module in list(sys.modules.items()):
        if name.startswith("argilla_server") and hasattr(module, "REDIS_CONNECTION"):
            module.REDIS_CONNECTION = connection
    for queue in (queues.DEFAULT_QUEUE, queues.HIGH_QUEUE):
        queue.connection = connection
        _run_what_is_enqueued(queue)


def _run_what_is_enqueued(queue: Any) -> None:
    # private: listed in codigit/upstream.py
    enqueue = queue._enqueue_job

    def _enqueue_job(job, pipeline=None, at_front=False):
        job = enqueue(job, pipeline=pipeline, at_front=at_front)
        if pipeline is not None:  # rq only executes a caller's pipeline later; run after it lands
            pipeline.execute()
        _schedule(queue, job)
        return job

    queue._enqueue_job = _enqueue_job


def _schedule(queue: Any, job: Any, delay: float = 0.0) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # enqueued outside the server (a script): run it to completion here
        asyncio.run(_perform(queue, job))
        return
    task = loop.create_task(_perform(queue, job, delay))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


async def _perform(queue: Any, job: Any, delay: float = 0.0) -> None:
    if delay:
        await asyncio.sleep(delay)
    connection = queue.connection
    queue.remove(job.id)
    pipe = connection.pipeline()
    # private: listed in codigit/upstream.py
    job.prepare_for_execution(WORKER_NAME, pipe)
    pipe.execute()
    try:
        result = job.func(*job.args, **job.kwargs)
        if inspect.isawaitable(result):
            result = await result
        job._result = result
        pipe = connection.pipeline()
        job._handle_success(RESULT_TTL, pipe)
        pipe.execute()
    except Exception:
        if job.retries_left:
            job.retries_left -= 1
            job.save()
            _LOGGER.warning("job %s failed, %d retries left", job.func_name, job.retries_left)
            _schedule(queue, job, delay=job.get_retry_interval())
            return
        _LOGGER.error("job %s failed:\n%s", job.func_name, traceback.format_exc())
        pipe = connection.pipeline()
        job._handle_failure(traceback.format_exc(), pipe)
        pipe.execute()


def finish_jobs_on_shutdown(app: Any, timeout: float = 30.0) -> None:
    """At a clean shutdown, let running jobs finish (bounded) before the loop closes and would drop them."""
    # private: listed in codigit/upstream.py
    lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def with_jobs_drained(application):
        async with lifespan(application) as state:
            yield state
        if _tasks:
            _LOGGER.info("waiting for %d background job(s) to finish", len(_tasks))
            await asyncio.wait(list(_tasks), timeout=timeout)

    app.router.lifespan_context = with_jobs_drained


def run_worker() -> None:
    """`--redis-url`: a real rq worker process for argilla-server's queues (the search engine must be registered)."""
    from argilla_server.jobs.queues import DEFAULT_QUEUE, HIGH_QUEUE, REDIS_CONNECTION
    from rq import Worker

    import codigit.server.search  # noqa: F401  registers the engine the jobs use

    Worker([HIGH_QUEUE, DEFAULT_QUEUE], connection=REDIS_CONNECTION).work()
