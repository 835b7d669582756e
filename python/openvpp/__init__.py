"""OpenVPP: the registry, routing and stablecoin settlement layer for distributed energy resources."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("openvpp")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
