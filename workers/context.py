"""Tenant context for jobs, carried by the message itself.

When a job is sent inside a tenant context, the middleware writes the tenant into the message's
options; the worker restores it before the actor runs. A retried or re-sent message keeps its
options, so it keeps its tenant. Actors take only ids: none of them handles the tenant."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Awaitable, Callable
from contextvars import Token
from typing import Any, TypeVar

import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.broker import MessageProxy

from services.tenancy.context import Scope, current_tenant_id, enter_scope, leave_scope, scope_of_tenant

TENANT_OPTION = "tenant_id"
R = TypeVar("R")


class TenantContextMiddleware(dramatiq.Middleware):
    def __init__(self) -> None:
        self._tokens = threading.local()

    def before_enqueue(
        self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int | None
    ) -> None:
        tenant_id = current_tenant_id()
        if tenant_id is not None:
            message.options.setdefault(TENANT_OPTION, tenant_id)

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        self._tokens.current = enter_scope(scope_of_tenant(message.options.get(TENANT_OPTION)))

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: Any = None,
    ) -> None:
        token: Token[Scope] | None = getattr(self._tokens, "current", None)
        if token is not None:
            leave_scope(token)
            self._tokens.current = None

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        self.after_process_message(broker, message)


def run_in_worker_loop(work: Callable[[], Awaitable[R]]) -> R:
    """Run async work on the worker's event loop, inside the calling thread's context (where the
    middleware put the tenant): asyncio would otherwise start it in the loop thread's context."""
    context = contextvars.copy_context()

    async def in_context() -> R:
        return await asyncio.get_running_loop().create_task(work(), context=context)  # type: ignore[arg-type]

    loop_thread = get_event_loop_thread()
    if loop_thread is None:
        raise RuntimeError("no worker event loop: the AsyncIO middleware has not started")
    return loop_thread.run_coroutine(in_context())
