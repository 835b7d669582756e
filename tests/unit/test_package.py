"""The package as users install it: a version, type information mypy uses
in their code, and the standard OTEL_SERVICE_NAME honoured by the client."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import subprocess
import sys
from pathlib import Path

import pytest

import openvpp
from openvpp.demo import tracing


def test_the_version_is_the_installed_distributions() -> None:
    assert openvpp.__version__ == importlib.metadata.version("openvpp")
    done = subprocess.run([sys.executable, "-m", "openvpp", "--version"], capture_output=True, text=True, check=True)
    assert openvpp.__version__ in done.stdout


def test_user_code_is_type_checked_against_the_package(tmp_path: Path) -> None:
    assert (importlib.resources.files("openvpp") / "py.typed").is_file()
    user = tmp_path / "user.py"
    user.write_text(
        "from openvpp.v1 import registry_pb2\n"
        "request = registry_pb2.GetDeviceRequest()\n"
        "wrong: int = request.identifier\n"
    )
    # Run where no project configuration applies, as a user's project would.
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--strict", str(user)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert "import-untyped" not in done.stdout, done.stdout
    # The package's types are used: assigning a message to an int is caught.
    assert 'Incompatible types in assignment (expression has type "DeviceIdentifier"' in done.stdout, done.stdout


def test_the_client_takes_its_service_name_from_otel_service_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    assert tracing.client_settings().service_name == "openvpp-demo"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "utility-backend")
    assert tracing.client_settings().service_name == "utility-backend"
