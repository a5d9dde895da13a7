"""A hostile or broken ``backends.json`` met on a reload: deep nesting, an oversized file, a
symlink loop or a directory in its place, wrong types and non-finite numbers, a backend
claiming a local model's name. Each is refused as an invalid file (the backends loaded before
stay, one warning) and never raises out of :meth:`RemoteModels.refresh`; only a missing file
means no backends. Real files in ``tmp_path``; no server needed."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from cove.backends.registry import MAX_FILE_BYTES, BackendRegistry, make_backend
from cove.backends.service import RemoteModels
from cove.config import Settings
from cove.errors import InvalidRequest

GOOD = {"backends": [{"name": "a", "url": "http://127.0.0.1:9001/v1", "models": ["big"]}]}


def write(home: Path, content: str | bytes) -> Path:
    path = home / "backends.json"
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        path.rmdir()
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    return path


def remote(home: Path, **kw: object) -> tuple[RemoteModels, list[float]]:
    now = [0.0]
    return RemoteModels(Settings(home=home), clock=lambda: now[0], **kw), now  # type: ignore[arg-type]


@pytest.mark.parametrize("text,why", [
    ('{"backends": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
    ('{"backends": [{"name": "a", "url": "http://h", "models": "m1xyz"}]}', "list of model"),
    ('{"backends": [{"name": "a", "url": "http://h", "models": [1]}]}', "list of model"),
    ('{"backends": [{"name": "a", "url": "http://h", "models": ["m"], "weight": Infinity}]}',
     "weight"),
    ('{"backends": [{"name": "a", "url": "http://h", "models": ["m"], "weight": NaN}]}',
     "weight"),
    ('{"backends": [{"name": "a", "url": "http://h", "models": ["m"], "weight": "2"}]}',
     "weight"),
    ('{"backends": [{"name": "a", "url": "http://h", "models": ["m"], "weight": 1e9}]}',
     "weight"),
    ('{"backends": [{"name": "a", "url": "http://h", "models": ["m"], '
     '"max_concurrency": 1e30}]}', "concurrency"),
    ('{"backends": [{"name": "a", "url": "http://h", "models": ["m"], '
     '"max_concurrency": 2.5}]}', "concurrency"),
    ('{"backends": [{"name": "a", "url": "http://h", "models": ["m"], '
     '"max_concurrency": true}]}', "concurrency"),
    ('{"backends": [{"name": "a", "url": "http://h", "models": ["m"], '
     '"max_concurrency": 100001}]}', "concurrency"),
    ('{"backends": [{"name": 7, "url": "http://h", "models": ["m"]}]}', "backend name"),
    ('{"backends": [{"name": "a", "url": ["http://h"], "models": ["m"]}]}', "URL"),
    ('{"backends": [{"name": "a", "url": "http://h", "models": ["m"], "prefix": 3}]}',
     "prefix"),
    ('{"backends": [{"name": "a", "url": "http://h", "models": ["m"], "api_key_env": 1}]}',
     "environment variable"),
    ('{"backends": [' + ",".join(['{"name": "a", "url": "http://h", "models": ["m"]}'] * 1001)
     + "]}", "more than 1000 backends"),
    (json.dumps({"backends": [{"name": f"b{i}", "url": "http://h",
                               "models": [f"m{j}" for j in range(500)]} for i in range(9)]}),
     "more than 4096 models"),
    ('{"backends": 5}', "expected"), ('{"other": []}', "expected"),
])
def test_bad_values_are_an_invalid_file(tmp_path: Path, text: str, why: str) -> None:
    write(tmp_path, text)
    with pytest.raises(InvalidRequest, match=why):
        BackendRegistry.load(tmp_path)


def test_sane_values_still_load(tmp_path: Path) -> None:
    write(tmp_path, json.dumps({"backends": [
        {"name": "a", "url": "http://h", "models": ["m"], "weight": 2, "max_concurrency": 8},
        {"name": "b", "url": "http://h2", "models": ["m"], "weight": 0.5, "prefix": None}]}))
    reg = BackendRegistry.load(tmp_path)
    assert [(b.weight, b.max_concurrency) for b in reg.backends] == [(2.0, 8), (0.5, 0)]


def test_make_backend_checks_ranges() -> None:
    with pytest.raises(InvalidRequest, match="weight"):
        make_backend("a", "http://h", ["m"], weight=float("inf"))
    with pytest.raises(InvalidRequest, match="models"):
        make_backend("a", "http://h", "m1xyz")  # type: ignore[arg-type]


def test_a_file_over_the_cap_is_refused_before_parsing(tmp_path: Path) -> None:
    entry = {"name": "a", "url": "http://h", "models": ["m"]}
    big = json.dumps({"backends": [entry], "pad": "x" * MAX_FILE_BYTES})
    write(tmp_path, big)
    with pytest.raises(InvalidRequest, match="more than the"):
        BackendRegistry.load(tmp_path)
    write(tmp_path, json.dumps({"backends": [entry], "pad": "x" * (MAX_FILE_BYTES // 2)}))
    assert len(BackendRegistry.load(tmp_path).backends) == 1  # under the cap: fine


def test_missing_is_no_backends_unreadable_is_an_error(tmp_path: Path) -> None:
    assert BackendRegistry.load(tmp_path).backends == []  # ENOENT
    path = tmp_path / "backends.json"
    path.symlink_to(path)  # a symlink loop: ELOOP
    with pytest.raises(InvalidRequest, match="cannot be read"):
        BackendRegistry.load(tmp_path)
    path.unlink()
    path.symlink_to(tmp_path / "gone.json")  # a dangling link: as missing
    assert BackendRegistry.load(tmp_path).backends == []
    path.unlink()
    path.mkdir()
    with pytest.raises(InvalidRequest, match="cannot be read|not a regular file"):
        BackendRegistry.load(tmp_path)
    path.rmdir()
    os.mkfifo(path)  # opened without blocking, then refused
    with pytest.raises(InvalidRequest, match="not a regular file"):
        BackendRegistry.load(tmp_path)
    path.unlink()
    if os.geteuid() != 0:  # root reads any file
        write(tmp_path, json.dumps(GOOD)).chmod(0)
        with pytest.raises(InvalidRequest, match="cannot be read"):
            BackendRegistry.load(tmp_path)


@pytest.mark.parametrize("attack", ["nested", "big", "loop", "dir", "types", "empty"])
def test_a_reload_of_a_bad_file_keeps_the_backends(tmp_path: Path, attack: str,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    write(tmp_path, json.dumps(GOOD))
    rm, now = remote(tmp_path)
    assert rm.names() == ["big"]
    path = tmp_path / "backends.json"
    path.unlink()
    if attack == "nested":
        path.write_text('{"backends": ' + "[" * 100_000 + "]" * 100_000 + "}")
    elif attack == "big":
        path.write_text(json.dumps({**GOOD, "pad": "x" * (17 << 20)}))
    elif attack == "loop":
        path.symlink_to(path)
    elif attack == "dir":
        path.mkdir()
    elif attack == "types":
        path.write_text('{"backends": [{"name": "a", "url": "http://h", "models": "m1xyz"}]}')
    else:
        path.write_text("")
    now[0] += 5
    with caplog.at_level(logging.WARNING, logger="cove.backends"):
        assert rm.names() == ["big"]  # no exception, the backends stay
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "kept" in warned[0].getMessage()
    now[0] += 5
    assert rm.names() == ["big"] and len(
        [r for r in caplog.records if r.levelno == logging.WARNING]) == 1  # said once
    if path.is_dir():
        path.rmdir()
    else:
        path.unlink()
    now[0] += 5
    assert rm.names() == []  # removed: no backends


def test_a_backend_claiming_a_local_name_is_left_out(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    local = {"smollm2:135m", "smollm2"}  # a name and an alias
    write(tmp_path, json.dumps({"backends": [
        {"name": "evil", "url": "http://h", "models": ["smollm2:135m", "other"]},
        {"name": "ok", "url": "http://h2", "models": ["smollm2:135m"], "prefix": "pool/"}]}))
    with caplog.at_level(logging.WARNING, logger="cove.backends"):
        rm, now = remote(tmp_path, is_local=lambda n: n in local)
    assert rm.names() == ["pool/smollm2:135m"] and not rm.serves("smollm2:135m")
    assert any("evil" in r.getMessage() and "local model" in r.getMessage()
               for r in caplog.records)
    write(tmp_path, json.dumps({"backends": [
        {"name": "ok", "url": "http://h2", "models": ["smollm2:135m"], "prefix": "pool/"},
        {"name": "evil2", "url": "http://h3", "models": ["smollm2"]}]}))
    now[0] += 5
    assert rm.names() == ["pool/smollm2:135m"] and not rm.serves("smollm2")
    assert "h3" not in rm.registry.hosts()  # nor is its host let through the egress guard
