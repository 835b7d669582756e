"""What every `openvpp` command shares: settings from flags, the connection options, calling and printing."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import grpc
from google.protobuf import json_format
from rich.console import Console

from openvpp.client.channel import channel_to
from openvpp.client.errors import describe
from openvpp.config import Settings

console = Console()
err_console = Console(stderr=True)
T = TypeVar("T")


def settings_from(**flags: Any) -> Settings:
    """Flags given on the command line win over OPENVPP_* variables."""
    try:
        return Settings(**{k: v for k, v in flags.items() if v is not None})
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def run_call(target: str, call: Callable[[grpc.aio.Channel], Awaitable[T]]) -> T:
    ctx = click.get_current_context()
    bundle: Path | None = ctx.params.get("bundle")
    insecure: bool = bool(ctx.params.get("insecure"))

    async def go() -> T:
        async with channel_to(target, bundle, insecure) as channel:
            return await call(channel)

    try:
        return asyncio.run(go())
    except grpc.aio.AioRpcError as exc:
        error = describe(exc)
        err_console.print(f"[red]{error}[/red]")
        for field, why in error.fields:
            err_console.print(f"  {field}: {why}")
        sys.exit(1)


def print_message(message: Any) -> None:
    console.print_json(json_format.MessageToJson(message, preserving_proto_field_name=True))


def connection_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--target, --bundle and --insecure, for every command that calls a server."""
    f = click.option("--insecure", is_flag=True, help="Plaintext, for a server run with --insecure.")(f)
    f = click.option(
        "--bundle",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path(".openvpp/operator"),
        show_default=True,
        envvar="OPENVPP_BUNDLE",
        help="Directory with key.pem, cert.pem and ca.pem (from `openvpp init` or `partner onboard`).",
    )(f)
    return click.option(
        "--target",
        default="127.0.0.1:50051",
        show_default=True,
        envvar="OPENVPP_TARGET",
        help="Server address host:port.",
    )(f)


target_option = connection_options
