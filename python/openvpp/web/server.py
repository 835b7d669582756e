"""The web app's HTTPS server (aiohttp): the JSON API, the event streams and
the built front end, beside the gRPC server and over the same services."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler
from opentelemetry.sdk.trace import TracerProvider

from openvpp import errors
from openvpp.config import Settings
from openvpp.integration import bootstrap
from openvpp.server import app as server_app
from openvpp.settlement.insights import Insights
from openvpp.web import auth, console, prosumer
from openvpp.web import errors as web_errors
from openvpp.web.http import SIGNIN

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"

# Everything the page loads comes from this server: no third-party origins.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except errors.OpenVPPError as exc:
        return web_errors.response(exc)


@web.middleware
async def _same_origin(request: web.Request, handler: Handler) -> web.StreamResponse:
    """State-changing requests from a browser must come from this origin
    (the session cookie is SameSite=Strict too)."""
    origin = request.headers.get("Origin")
    unsafe = request.method not in ("GET", "HEAD", "OPTIONS")
    if unsafe and origin is not None and origin != f"{request.scheme}://{request.host}":
        return web_errors.response(errors.PermissionDenied("requests must come from this site", "CROSS_ORIGIN"))
    return await handler(request)


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if request.secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")
    elif request.path.startswith("/assets/"):
        # Vite names assets by content hash.
        response.headers.setdefault("Cache-Control", "public, max-age=31536000, immutable")
    else:
        response.headers.setdefault("Cache-Control", "no-cache")


async def _index(request: web.Request) -> web.StreamResponse:
    index = STATIC / "index.html"
    if not index.exists():
        raise web.HTTPServiceUnavailable(text="the front end is not built: run `make web`")
    return web.FileResponse(index)


async def _unknown_api(request: web.Request) -> web.StreamResponse:
    raise errors.NotFound(f"no web API at {request.path}", "NO_SUCH_ENDPOINT")


def application(core: server_app.App) -> web.Application:
    """The web app over a started server's services."""
    assert core.runtime is not None
    assert core.signin is not None
    application = web.Application(middlewares=[_errors, _same_origin], client_max_size=256 * 1024)
    application[SIGNIN] = core.signin
    application[prosumer.DOMAINS] = prosumer.Domains(
        core.registry, core.runtime.services, core.runtime.billing, Insights(core.db)
    )
    application[console.SERVICERS] = core.servicers
    application.add_routes(auth.routes)
    application.add_routes(prosumer.routes)
    application.add_routes(console.routes)
    application.router.add_route("*", "/api/{tail:.*}", _unknown_api)
    application.router.add_get("/", _index)
    if (STATIC / "assets").exists():
        application.router.add_static("/assets/", STATIC / "assets")
    application.router.add_get("/{name:[a-z0-9-]+\\.(?:svg|png|ico|webmanifest)}", _file)
    application.on_response_prepare.append(_headers)
    return application


async def _file(request: web.Request) -> web.StreamResponse:
    path = STATIC / request.match_info["name"]
    if not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path)


def _tls(settings: Settings) -> ssl.SSLContext | None:
    """The gRPC server's own certificate; plain HTTP only with --insecure
    (loopback, development), as for gRPC."""
    if settings.insecure:
        return None
    server = bootstrap.Bundle(settings.data_dir / bootstrap.SERVER_DIR)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(server.cert, server.key)
    return context


@dataclass
class WebServer:
    runner: web.AppRunner
    port: int
    url: str

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start(core: server_app.App, listen: str) -> WebServer:
    host, _, port = listen.rpartition(":")
    runner = web.AppRunner(application(core), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    tls = _tls(core.settings)
    site = web.TCPSite(runner, host.strip("[]") or "127.0.0.1", int(port), ssl_context=tls)
    await site.start()
    bound = runner.addresses[0][1]
    url = core.settings.web_public_url.rstrip("/") or f"{'https' if tls else 'http'}://{host or '127.0.0.1'}:{bound}"
    core.servicers["IntegrationService"].web_url = url
    log.info("web app on %s", url)
    return WebServer(runner, bound, url)


async def serve(settings: Settings, tracer_provider: TracerProvider | None = None) -> None:
    """The gRPC server and, with `web_listen`, the web app, until SIGTERM or
    SIGINT; then both drain and stop."""
    core = await server_app.start(settings, tracer_provider)
    site = await start(core, settings.web_listen) if settings.web_listen else None
    server_app.tune_garbage_collector()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("draining (grace %.1fs)", settings.shutdown_grace_seconds)
    if site is not None:
        await site.stop()
    await core.stop()
