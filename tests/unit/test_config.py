from __future__ import annotations

from pathlib import Path

import pytest

from openvpp.config import Settings, TelemetrySettings


def test_defaults_are_the_embedded_sqlite_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENVPP_DATABASE_URL", raising=False)
    settings = Settings(data_dir=Path("/srv/openvpp"))
    assert settings.resolved_database_url() == "sqlite:////srv/openvpp/openvpp.db"


def test_flags_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENVPP_LISTEN", "0.0.0.0:6000")
    monkeypatch.setenv("OPENVPP_DATABASE_URL", "postgresql+psycopg://u@db/openvpp")
    assert Settings().listen == "0.0.0.0:6000"
    assert Settings(listen="127.0.0.1:7000").listen == "127.0.0.1:7000"
    assert Settings().resolved_database_url() == "postgresql+psycopg://u@db/openvpp"


def test_out_of_range_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_bulk_chunk"):
        Settings(max_bulk_chunk=0)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "none"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, "otlp"),
        ({"OTEL_TRACES_EXPORTER": "Console"}, "console"),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, "none"),
    ],
)
def test_exporter_follows_the_standard_otel_variables(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert TelemetrySettings().exporter() == expected
