"""Pulls against a fake hub on loopback: progress, resume, checksum, quant choice, errors."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cove.errors import ModelNotFound, PullFailed
from cove.models.pull import Progress, PullCancelled, pull
from cove.models.registry import ModelRegistry
from cove.models.store import ModelStore
from cove.privacy import install_egress_guard
from tests.fakehub import FakeHub
from tests.gguf_files import make_gguf

REPO = "tester/Tiny-GGUF"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    install_egress_guard()  # the real path: pulls run inside egress_allowed()
    d = tmp_path_factory.mktemp("hubfiles")
    h = FakeHub()
    for quant, seed in (("Q4_K_M", 1), ("Q8_0", 2)):
        f = make_gguf(d / f"tiny-{quant}.gguf", n_floats=50_000, seed=seed)
        h.add(REPO, f"Tiny-{quant}.gguf", f.read_bytes())
    h.add(REPO, "README.md", b"# tiny")
    h.start()
    yield h
    h.stop()


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(ModelStore(tmp_path / "models"))


def test_pull_picks_quant_verifies_and_reports(hub: FakeHub, registry: ModelRegistry) -> None:
    seen: list[Progress] = []
    entry = pull(registry, f"hf.co/{REPO}:q8_0", seen.append, hub=hub.url)
    assert entry.name == "hf.co/tester/tiny-gguf:q8_0"
    data = hub.files[REPO]["Tiny-Q8_0.gguf"]
    assert entry.path.read_bytes() == data
    assert entry.source["file"] == "Tiny-Q8_0.gguf"
    statuses = [p.status for p in seen]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    assert "verifying sha256 digest" in statuses
    downloads = [p for p in seen if p.total]
    assert downloads[-1].completed == downloads[-1].total == len(data)
    assert [e.name for e in registry.list()].count(entry.name) == 1
    assert entry.meta()["context_length"] == 2048


def test_default_quant_is_q4_k_m(hub: FakeHub, registry: ModelRegistry) -> None:
    entry = pull(registry, f"hf.co/{REPO}", hub=hub.url)
    assert entry.name == "hf.co/tester/tiny-gguf:latest"
    assert entry.source["file"] == "Tiny-Q4_K_M.gguf"


def test_resume_after_interruption(hub: FakeHub, registry: ModelRegistry) -> None:
    key = f"{REPO}/Tiny-Q4_K_M.gguf"
    size = len(hub.files[REPO]["Tiny-Q4_K_M.gguf"])
    hub.cut_after[key] = 100 * 1024
    with pytest.raises(PullFailed, match="resume"):
        pull(registry, f"hf.co/{REPO}:Q4_K_M", hub=hub.url)
    assert registry.store is not None
    partials = list(registry.store.blobs.glob("*-partial"))
    assert len(partials) == 1 and 0 < partials[0].stat().st_size < size
    have = partials[0].stat().st_size
    hub.requests.clear()
    seen: list[Progress] = []
    entry = pull(registry, f"hf.co/{REPO}:Q4_K_M", seen.append, hub=hub.url)
    assert (f"/cdn/{key}", f"bytes={have}-") in hub.requests  # resumed, not restarted
    assert entry.path.read_bytes() == hub.files[REPO]["Tiny-Q4_K_M.gguf"]
    assert [p for p in seen if p.total][0].completed == have
    assert not list(registry.store.blobs.glob("*-partial"))


def test_checksum_mismatch_is_rejected(hub: FakeHub, registry: ModelRegistry) -> None:
    hub.corrupt.add(f"{REPO}/Tiny-Q8_0.gguf")
    try:
        with pytest.raises(PullFailed, match="checksum mismatch"):
            pull(registry, f"hf.co/{REPO}:Q8_0", hub=hub.url)
    finally:
        hub.corrupt.clear()
    assert registry.store is not None
    assert not list(registry.store.blobs.glob("*"))  # nothing corrupt kept
    assert [e.name for e in registry.list()] == ["smollm2:135m"]


def test_cancel_keeps_partial(hub: FakeHub, registry: ModelRegistry) -> None:
    cancel = threading.Event()

    def report(p: Progress) -> None:
        if p.total:  # the download is about to start
            cancel.set()

    with pytest.raises(PullCancelled):
        pull(registry, f"hf.co/{REPO}:Q8_0", report, hub=hub.url, cancel=cancel)
    assert registry.store is not None
    assert list(registry.store.blobs.glob("*-partial"))
    entry = pull(registry, f"hf.co/{REPO}:Q8_0", hub=hub.url)
    assert entry.path.read_bytes() == hub.files[REPO]["Tiny-Q8_0.gguf"]


@pytest.mark.parametrize("ref,err", [
    (f"hf.co/{REPO}:Q2_K", PullFailed),
    ("hf.co/nobody/Missing-GGUF", ModelNotFound),
    ("not-curated:7b", ModelNotFound),
    ("smollm2:135m", ModelNotFound),
    ("hf.co/../../etc", ModelNotFound),
    ("hf.co/a/b/c", ModelNotFound),
])
def test_pull_errors(hub: FakeHub, registry: ModelRegistry, ref: str, err: type) -> None:
    with pytest.raises(err):
        pull(registry, ref, hub=hub.url)
    assert registry.store is not None
    assert not registry.store.manifests.exists() or not list(registry.store.manifests.rglob("*"))


def test_non_loopback_hub_is_refused_by_the_guard(registry: ModelRegistry) -> None:
    """Only the hub's own host is let out; a redirect elsewhere is refused (here: the guard
    itself refuses a lookup for a host that was not allowed)."""
    from cove.privacy import refusals

    before = len(refusals())
    with pytest.raises(PullFailed):
        import hashlib

        from cove.models.pull import _File, _transfer

        _transfer("http://127.0.0.1:9", "http://example.com/x", Path("/nonexistent"), 0,
                  _File("x", "sha256:" + "0" * 64, 10), hashlib.sha256(), lambda n: None, None)
    assert len(refusals()) == before  # refused by Cove's redirect check before any lookup
