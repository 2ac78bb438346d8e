"""The demo's FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from fast_app.core.queue import QueueUnavailableError, close
from fast_app_demo import endpoints, inspection
from fast_app_demo.middleware import RequestContextMiddleware

__all__ = ["create_app"]

# Polled by the tour and by people watching jobs: spans of these would bury the
# requests that queue jobs.
_UNTRACED_URLS = (
    "/activity,/jobs/,/thumbnails/,/reports/batch/,/dead-letters,/docs,/openapi.json,/favicon.ico"
)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await close()  # the broker connection of the async_farm driver


async def _broker_unavailable(request: Request, error: Exception) -> JSONResponse:
    # The message names the broker with its password hidden.
    return JSONResponse(
        {"detail": f"the job could not be queued: {error}"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
    )


def create_app() -> FastAPI:
    """A new instance of the demo's API.

    Configure telemetry (``fast_app_demo.telemetry``) before calling it, so that the
    spans of the requests go where you want.
    """
    app = FastAPI(
        title="FastApp queue demo",
        description=(
            "Endpoints that queue jobs with FastApp's queue: context, timeouts, retries, "
            "dead letters, bulk. See GET / and the demo's README."
        ),
        version="0.1.0",
        lifespan=_lifespan,
    )
    app.add_middleware(RequestContextMiddleware)
    app.add_exception_handler(QueueUnavailableError, _broker_unavailable)
    app.include_router(endpoints.router)
    app.include_router(inspection.router)
    # The instrumentation's middleware wraps all others: the request's server span is
    # current while endpoints run, so each queue() call's publish span is its child.
    FastAPIInstrumentor.instrument_app(
        app, excluded_urls=_UNTRACED_URLS, exclude_spans=["receive", "send"]
    )
    return app
