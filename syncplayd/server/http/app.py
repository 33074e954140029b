"""The Quart (trio) application factory: routes, error mapping, health."""

from __future__ import annotations

import logging

import trio
from quart import Response, request, websocket
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from syncplayd.server.http.admin import admin_blueprint
from syncplayd.server.http.api import api
from syncplayd.server.http.auth import Incoming, host_allowed
from syncplayd.server.http.problems import from_service_error, json_response, problem
from syncplayd.server.http.state import AppState
from syncplayd.server.http.web import web
from syncplayd.server.process.admin_socket import SOCKET_SCOPE_KEY
from syncplayd.service import ServiceError
from syncplayd.storage.errors import StorageUnavailable

log = logging.getLogger(__name__)

#: /readyz answers within this, ready or not (orchestrators' probes time out at 1-5 s).
READY_TIMEOUT_SECONDS = 3.0

_HTTP_CODES = {
    400: "bad-request",
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
    415: "unsupported-media-type",
}


def create_app(state: AppState) -> QuartTrio:
    """Build the HTTP application around the daemon's shared objects."""
    app = QuartTrio("syncplayd")
    app.config["MAX_CONTENT_LENGTH"] = state.settings.server.max_request_bytes
    app.extensions["syncplayd"] = state
    app.register_blueprint(api)
    app.register_blueprint(admin_blueprint)
    if state.settings.web.enabled:
        app.register_blueprint(web)

    @app.before_request
    async def _read_body_first() -> None:
        # Hypercorn 0.18 stalls a keep-alive connection when the response is
        # finished before the request body has arrived (the next request on it
        # never gets an answer). Reading the body before answering, even for
        # requests that ignore it, rules that out; bodies are capped by
        # MAX_CONTENT_LENGTH, so this costs nothing.
        await request.get_data()

    def misdirected(incoming: Incoming) -> Response | None:
        # server.allowed_hosts: a page whose DNS name was rebound to this daemon (or to
        # the proxy in front of it) names its own host, and is answered with nothing.
        # The admin socket is exempt: no browser reaches a unix socket.
        if incoming.scope.get(SOCKET_SCOPE_KEY) is True or host_allowed(
            incoming.headers.getlist("Host"), state.settings.server.allowed_hosts
        ):
            return None
        return problem(421, "host-not-allowed", "this server does not answer for that host")

    # Registered after _read_body_first, so it runs after it (see there).
    @app.before_request
    async def _check_host() -> Response | None:
        return misdirected(request)

    @app.before_websocket
    async def _check_websocket_host() -> Response | None:
        # Before the upgrade is accepted: the refusal is an HTTP answer.
        return misdirected(websocket)

    @app.after_request
    async def _count(response: Response) -> Response:
        state.metrics.http_request(request.method, response.status_code)
        return response

    if state.settings.metrics.enabled:

        @app.get("/metrics")
        async def metrics() -> Response:
            body, content_type = state.metrics.render(request.headers.get("Accept"))
            return Response(body, content_type=content_type)

    @app.get("/healthz")
    async def healthz() -> Response:
        return json_response({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> Response:
        # A probe that hangs is as bad as no probe: answer within a bound, whatever
        # the database does (queued behind other calls, or a connection still being
        # attempted). The thread of a ping already running finishes on its own.
        failure: str | None = None
        with trio.move_on_after(READY_TIMEOUT_SECONDS):
            try:
                await state.repo.ping()
            except StorageUnavailable as exc:
                failure = str(exc)
            else:
                return json_response({"status": "ready"})
        if failure is None:
            failure = f"no answer within {READY_TIMEOUT_SECONDS:.0f} s"
        # The probe is unauthenticated: details go to the log, not the answer.
        log.warning("readiness check failed: %s", failure)
        detail = "the database is unreachable"
        return json_response({"status": "unavailable", "detail": detail}, 503)

    @app.errorhandler(ServiceError)
    async def _service_error(error: ServiceError) -> Response:
        state.metrics.error(error.code)
        return from_service_error(error)

    @app.errorhandler(StorageUnavailable)
    async def _storage_down(error: StorageUnavailable) -> Response:
        log.warning("database unavailable: %s", error)
        state.metrics.error("unavailable")
        return problem(503, "unavailable", "the database is unavailable; try again shortly")

    @app.errorhandler(HTTPException)
    async def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        code = _HTTP_CODES.get(status, "http-error")
        headers = {}
        if status == 413:
            # The rest of the oversized body is never read: the connection cannot be reused.
            headers["Connection"] = "close"
        if status == 405 and error.valid_methods:  # type: ignore[attr-defined]
            headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
        return problem(status, code, error.description or "", headers=headers)

    @app.errorhandler(Exception)
    async def _bug(error: Exception) -> Response:
        # Our fault: log the traceback for the operator, never send it to the client.
        log.exception("unhandled error in %s", type(error).__name__)
        state.metrics.error("internal-error")
        return problem(500, "internal-error", "an internal error occurred; it has been logged")

    return app
