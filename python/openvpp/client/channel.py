"""Channels to an OpenVPP server: mutual TLS with a partner bundle, or plaintext."""

from __future__ import annotations

from pathlib import Path

import grpc


def credentials(bundle: Path) -> grpc.ChannelCredentials:
    """Client credentials from a bundle directory (key.pem, cert.pem, ca.pem)."""
    return grpc.ssl_channel_credentials(
        root_certificates=(bundle / "ca.pem").read_bytes(),
        private_key=(bundle / "key.pem").read_bytes(),
        certificate_chain=(bundle / "cert.pem").read_bytes(),
    )


def channel_to(target: str, bundle: Path | None, insecure: bool = False) -> grpc.aio.Channel:
    if insecure:
        return grpc.aio.insecure_channel(target)
    if bundle is None or not (bundle / "cert.pem").exists():
        raise FileNotFoundError(f"no client bundle at {bundle}; pass --bundle, or --insecure for a plaintext server")
    return grpc.aio.secure_channel(target, credentials(bundle))
