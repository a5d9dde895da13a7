"""Every setting is documented: in its Field description and in README.md."""

from __future__ import annotations

from pathlib import Path

from cove.config import Settings, load_settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_has_a_description_and_is_in_readme() -> None:
    readme = README.read_text()
    for name, field in Settings.model_fields.items():
        assert field.description, name
        assert f"COVE_{name.upper()}" in readme, f"COVE_{name.upper()} missing from README"


def test_environment_overrides(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COVE_PORT", "9999")
    monkeypatch.setenv("COVE_N_CTX", "512")
    s = load_settings()
    assert (s.port, s.n_ctx) == (9999, 512)
    assert load_settings(port=1234).port == 1234


def test_keep_alive_beyond_a_century_is_forever() -> None:
    from cove.config import parse_duration

    assert parse_duration(1e12) == -1
    assert parse_duration("1e12") == -1
    assert parse_duration(10**30) == -1
    assert parse_duration("5m") == 300



def test_more_slots_than_batch_rows_is_a_clear_settings_error(capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """llama.cpp aborts the whole process when a context has more sequences than a batch has
    rows (COVE_N_PARALLEL=16 with COVE_N_BATCH=8 crashed the server at the first request)."""
    import pytest

    from cove.cli.common import read_settings

    monkeypatch.setenv("COVE_N_PARALLEL", "9")
    monkeypatch.setenv("COVE_N_BATCH", "8")
    with pytest.raises(SystemExit):
        read_settings()
    err = capsys.readouterr().err
    assert "COVE_N_PARALLEL" in err and "COVE_N_BATCH (8)" in err
    monkeypatch.setenv("COVE_N_BATCH", "9")
    assert read_settings().n_parallel == 9
