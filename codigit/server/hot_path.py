"""Work argilla-server repeats on every submission that the embedded server skips or does once.

Measured with `benchmarks/server_load.py` (a CPU profile of the server under load; benchmarks/README.md):
- Webhook events. After each write, argilla-server builds the event a webhook would receive (a submission builds
  two or three: the response's, the record's status and, when it completes, the record's "completed"): it reloads
  the record's or response's dataset with its workspace, fields, questions, metadata properties and vector
  settings (6 to 9 queries) and serialises it, and only then asks whether any webhook is enabled. Here the question
  comes first: an event no enabled webhook listens to is not built. The enabled webhooks' events are remembered
  for a moment (`WEBHOOKS_SEEN_FOR` seconds); this server's own webhook routes forget them at once, so a webhook
  created, changed or removed through the API applies to the next event; one changed by another process applies
  within that moment. Webhooks that are enabled get exactly argilla-server's events.
  The queries also kept a connection in a transaction after the submission's commit: with writes serialised
  (sqlite_writes), the next writer waited for that transaction to end.
- The signed-in user, twice. Every request with an API key looks its user up by key, then again by the username
  that lookup found (each with the user's workspaces: four queries). In the same session and transaction the second
  lookup returns the very object the first loaded (SQLAlchemy's identity map; it does not reload what is loaded),
  so here it is returned without the queries.
- The Server-Timing header. argilla-server adds it with Starlette's `@app.middleware("http")`, which runs each
  request in a task of its own with its own streams (about 2 ms of CPU a request here); the same header comes from
  a plain ASGI middleware in its place.
- Question and metadata settings. `Question.parsed_settings` (read to validate every answer) built a pydantic
  TypeAdapter, a schema compilation, on each call; it is built once here.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

WEBHOOKS_SEEN_FOR = 2.0  # seconds an answer to "which events do enabled webhooks want?" is reused
WEBHOOK_EVENT_BUILDERS = (
    ("argilla_server.webhooks.v1.records", "build_record_event"),
    ("argilla_server.webhooks.v1.responses", "build_response_event"),
    ("argilla_server.webhooks.v1.datasets", "build_dataset_event"),
)
WEBHOOK_CHANGES = ("create_webhook", "update_webhook", "delete_webhook")


_adapters: dict[str, Any] = {}  # pydantic TypeAdapters, built once by install()
# (session, user) of the request's API-key lookup, for the username lookup that follows it in the same session
_by_key: ContextVar[tuple[AsyncSession, Any] | None] = ContextVar("codigit_user_by_key", default=None)


class _Wanted:
    """The events some enabled webhook listens to, and when that was read (monotonic seconds)."""

    events: frozenset[str] = frozenset()
    read_at: float | None = None


class _NotBuilt:
    """Stands for an event no enabled webhook listens to: notifying it enqueues nothing, as argilla-server's would."""

    def __init__(self, event: str, timestamp: datetime):
        self.event, self.timestamp, self.data = event, timestamp, {}

    async def notify(self, db: AsyncSession) -> list:
        return []


def forget_webhooks() -> None:
    """The next event reads the enabled webhooks again."""
    _Wanted.read_at = None


async def wanted_events(db: AsyncSession) -> frozenset[str]:
    """Events some enabled webhook listens to (the same query argilla-server makes before enqueuing, on the same
    session, so it reads what the request's own transaction sees)."""
    from argilla_server.models import Webhook

    now = time.monotonic()
    if _Wanted.read_at is None or now - _Wanted.read_at > WEBHOOKS_SEEN_FOR:
        rows = await db.execute(select(Webhook.events).where(Webhook.enabled.is_(True)))
        _Wanted.events = frozenset(str(getattr(e, "value", e)) for (events,) in rows for e in events or ())
        _Wanted.read_at = now
    return _Wanted.events


def install(app: Any) -> None:
    """Put the webhook check before event building, reuse the signed-in user, time requests in plain ASGI and build
    the settings adapters once."""
    import importlib

    from argilla_server.api.schemas.v1.questions import QuestionSettings
    from argilla_server.contexts import accounts, webhooks
    from argilla_server.models.database import MetadataProperty, Question
    from argilla_server.models.metadata_properties import MetadataPropertySettings
    from pydantic import TypeAdapter
    from starlette.middleware import Middleware

    # private: listed in codigit/upstream.py
    for module_name, name in WEBHOOK_EVENT_BUILDERS:
        module = importlib.import_module(module_name)
        setattr(module, name, _checked_first(getattr(module, name)))
    for name in WEBHOOK_CHANGES:
        setattr(webhooks, name, _forgetting(getattr(webhooks, name)))

    for i, middleware in enumerate(app.user_middleware):
        if getattr(middleware.kwargs.get("dispatch"), "__name__", "") == "add_server_timing_header":
            app.user_middleware[i] = Middleware(ServerTiming)
            break
    else:
        raise RuntimeError("argilla-server has no add_server_timing_header middleware; is this argilla-server 2.8.0?")
    accounts.get_user_by_api_key = _remembering(accounts.get_user_by_api_key)
    accounts.get_user_by_username = _reusing(accounts.get_user_by_username)

    _adapters["question"] = TypeAdapter(QuestionSettings)
    metadata_settings = TypeAdapter(MetadataPropertySettings)
    Question.parsed_settings = property(lambda self: question_settings(self.settings))
    MetadataProperty.parsed_settings = property(lambda self: metadata_settings.validate_python(self.settings))


def question_settings(settings: dict) -> Any:
    """A question's settings as `Question.parsed_settings` gives them (after install)."""
    return _adapters["question"].validate_python(settings)


def _checked_first(build):
    async def build_if_wanted(db: AsyncSession, event: Any, subject: Any):
        if str(getattr(event, "value", event)) not in await wanted_events(db):
            return _NotBuilt(event, datetime.utcnow())
        return await build(db, event, subject)

    build_if_wanted.__name__ = build_if_wanted.__qualname__ = build.__name__
    build_if_wanted.__wrapped__ = build  # type: ignore[attr-defined]
    return build_if_wanted


def _forgetting(change):
    async def change_then_forget(*args: Any, **kwargs: Any):
        try:
            return await change(*args, **kwargs)
        finally:
            forget_webhooks()

    change_then_forget.__name__ = change_then_forget.__qualname__ = change.__name__
    change_then_forget.__wrapped__ = change  # type: ignore[attr-defined]
    return change_then_forget


def _remembering(by_key):
    async def get_user_by_api_key(db: AsyncSession, api_key: str):
        user = await by_key(db, api_key=api_key)
        _by_key.set((db, user) if user is not None else None)
        return user

    get_user_by_api_key.__wrapped__ = by_key  # type: ignore[attr-defined]
    return get_user_by_api_key


def _reusing(by_username):
    async def get_user_by_username(db: AsyncSession, username: str):
        from sqlalchemy import inspect

        found = _by_key.get()
        if found is not None and found[0] is db:
            user, state = found[1], inspect(found[1])
            # still in this session as loaded (not deleted, detached or expired since: reading an expired attribute
            # would load it, which an async session cannot do here), with its workspaces
            if (
                state.persistent
                and state.session is db.sync_session
                and not state.expired
                and not state.expired_attributes
                and "workspaces" not in state.unloaded
                and user.username == username
            ):
                return user
        return await by_username(db, username)

    get_user_by_username.__wrapped__ = by_username  # type: ignore[attr-defined]
    return get_user_by_username


class ServerTiming:
    """ASGI middleware: the `Server-Timing: total;dur=<ms>` header argilla-server's middleware adds to each response."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()

        async def send_timed(message: dict) -> None:
            if message["type"] == "http.response.start":
                from starlette.datastructures import MutableHeaders

                MutableHeaders(scope=message)["Server-Timing"] = f"total;dur={(time.perf_counter() - start) * 1000}"
            await send(message)

        await self.app(scope, receive, send_timed)
