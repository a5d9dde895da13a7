"""Retrieval over documents: hybrid (reciprocal rank fusion) vs keyword-only vs vector-only on
a corpus nobody here wrote, ingest speed, and query latency at 10k and 100k passages.

Corpus: the Python documentation HTML of Debian's ``python3-doc`` package
(``apt-get install -y python3-doc``; ``/usr/share/doc/python3-doc/html``), every page but the
generated indexes (``genindex*``, ``py-modindex``, ``search``) and Sphinx's ``_static`` etc.
Each page is added as a document through the real path (:func:`service.prepare` then
:func:`service.add_document`: HTML sections, recursive chunks, WordLlama vectors, FTS5 rows).

Questions: :data:`QUESTIONS`, written for this benchmark (about a third of them paraphrased
so that they share few words with their page), each with the page(s) that answer it. A
question is found at k when one of the top k passages comes from an expected page; recall@5
counts those, MRR is the mean of 1 / rank of the first such passage within the top 10.

Latency: :func:`service.search` (the whole hybrid search as chat answers call it: staleness
check, keyword and vector ranks, fusion, rows) per question, on a collection of 10,000 passages
(the corpus' first passages) and on one of 100,000 (the corpus plus synthetic passages: real
passages' words shuffled, embedded like the rest). p50 / p95 over every question, twice.

Usage: .venv/bin/python bench/retrieval.py [--docs DIR] [--db sqlite|postgres] [--quality-only]
Writes the store's section of docs/retrieval.md and docs/bench_retrieval_<store>.png (matplotlib,
the ``bench`` extra);
``--quality-only`` ingests and prints recall@5 and MRR without the latency runs and writes
nothing (recall does not depend on the machine's load, latency does).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, select, text  # noqa: E402

from bench.common import machine, write_section  # noqa: E402
from bench.retrieval_questions import QUESTIONS  # noqa: E402
from cove.config import Settings  # noqa: E402
from cove.features.search import index, service  # noqa: E402
from cove.features.search.store import Chunk, Document  # noqa: E402
from cove.store.db import Database, open_database  # noqa: E402
from cove.store.tables import User  # noqa: E402

DOCS = Path("/usr/share/doc/python3-doc/html")
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "retrieval.md"
PLOT = ROOT / "docs" / "bench_retrieval.png"
SKIP = ("genindex", "py-modindex", "search.html")


def pages(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.html")
                  if not any(part.startswith("_") for part in p.relative_to(root).parts)
                  and not p.name.startswith(SKIP))


def doc_name(root: Path, page: Path) -> str:
    """A document name that keeps the page's folder (``library__json.html``)."""
    return str(page.relative_to(root)).replace("/", "__")


@contextmanager
def database(kind: str, home: Path) -> Iterator[Database]:
    if kind == "sqlite":
        db = open_database(Settings(home=home))
        yield db
        db.close()
        return
    from tests import pg

    with pg.postgres_server() as url, pg.fresh_database(url) as dburl:
        db = open_database(Settings(home=home, database_url=dburl))
        yield db
        db.close()


def ingest(db: Database, root: Path, files: list[Path]) -> tuple[int, int, float, float]:
    """Add every page to a new collection: ``(collection id, user id, seconds, CPU seconds
    of this process)``."""
    with db.session() as s:
        u = User(email="bench@example.org", password_hash="x")
        s.add(u)
        s.flush()
        uid, cid = u.id, service.create_collection(s, u.id, "python-docs").id
    t0, c0 = time.perf_counter(), time.process_time()
    for f in files:
        prepared = service.prepare(doc_name(root, f), f.read_bytes(), 50 * 1024 * 1024)
        with db.session() as s:
            service.add_document(s, uid, cid, prepared)
    return uid, cid, time.perf_counter() - t0, time.process_time() - c0


def ranked_docs(db: Database, method: str, uid: int, cid: int, q: str) -> list[str]:
    """Document names of the top 10 passages for ``q`` by ``method``."""
    with db.session() as s:
        if method == "hybrid":
            return [h["document"] for h in service.search(s, uid, [cid], q, limit=10)]
        ranks = (index.keyword_ranks if method == "keyword" else index.vector_ranks)(
            s, [cid], q, 10)
        names = dict(s.execute(select(Chunk.id, Document.filename).join(
            Document, Document.id == Chunk.document_id).where(Chunk.id.in_(ranks))).all())
        return [names[i] for i in ranks]


def quality(db: Database, uid: int, cid: int) -> dict[str, tuple[float, float]]:
    """``{method: (recall@5, MRR@10)}``."""
    out = {}
    for method in ("hybrid", "keyword", "vector"):
        found, rr = 0, 0.0
        for q, expected in QUESTIONS:
            wanted = {e.replace("/", "__") for e in expected}
            docs = ranked_docs(db, method, uid, cid, q)
            first = next((i for i, d in enumerate(docs, 1) if d in wanted), None)
            found += first is not None and first <= 5
            rr += 1 / first if first else 0.0
        out[method] = (found / len(QUESTIONS), rr / len(QUESTIONS))
    return out


def copy_collection(db: Database, uid: int, source: int, name: str, limit: int) -> int:
    """A new collection holding copies of the first ``limit`` passages of ``source``."""
    with db.session() as s:
        cid = service.create_collection(s, uid, name).id
        doc_ids = {}
        rows = s.execute(select(Chunk).where(Chunk.collection_id == source)
                         .order_by(Chunk.id).limit(limit)).scalars().all()
        for c in rows:
            if c.document_id not in doc_ids:
                d = s.get(Document, c.document_id)
                assert d is not None
                copy = Document(user_id=uid, collection_id=cid, filename=d.filename,
                                kind=d.kind, bytes=d.bytes, sha256=d.sha256, chars=d.chars)
                s.add(copy)
                s.flush()
                doc_ids[c.document_id] = copy.id
        s.execute(insert(Chunk), [
            {"user_id": uid, "collection_id": cid, "document_id": doc_ids[c.document_id],
             "ordinal": c.ordinal, "text": c.text, "page": c.page, "heading": c.heading,
             "start": c.start, "end": c.end, "embedder": c.embedder, "dim": c.dim,
             "vector": c.vector} for c in rows])
    return cid


def pad(db: Database, uid: int, cid: int, total: int, seed: int = 0) -> float:
    """Add synthetic passages (real passages' words shuffled) to ``cid`` until it has
    ``total``; returns the seconds spent embedding them."""
    rng = random.Random(seed)
    with db.session() as s:
        texts = list(s.scalars(select(Chunk.text).where(Chunk.collection_id == cid)))
    need = total - len(texts)
    spent = 0.0
    batch = 2000
    for start in range(0, need, batch):
        fake = []
        for _ in range(min(batch, need - start)):
            words = rng.choice(texts).split()
            rng.shuffle(words)
            fake.append(" ".join(words))
        t0 = time.perf_counter()
        vectors = index.embed(fake)
        spent += time.perf_counter() - t0
        with db.session() as s:
            d = Document(user_id=uid, collection_id=cid, filename=f"synthetic-{start}.txt",
                         kind="text", bytes=0, sha256="0" * 64, chars=0)
            s.add(d)
            s.flush()
            s.execute(insert(Chunk), [
                {"user_id": uid, "collection_id": cid, "document_id": d.id, "ordinal": i,
                 "text": t, "page": None, "heading": "", "start": 0, "end": len(t),
                 "embedder": index.EMBEDDER, "dim": len(v), "vector": v.tobytes()}
                for i, (t, v) in enumerate(zip(fake, vectors, strict=True))])
    return spent


def latency(fn: Callable[[str], object], rounds: int = 2) -> tuple[float, float, float]:
    """p50 and p95 in milliseconds of ``fn(question)`` over every question, ``rounds`` times
    (one warm-up call first), and the median CPU milliseconds of this process per call (what
    a quiet machine would take, the work being single-threaded but for the tokenizer)."""
    fn(QUESTIONS[0][0])
    times, cpu = [], []
    for _ in range(rounds):
        for q, _expected in QUESTIONS:
            t0, c0 = time.perf_counter(), time.process_time()
            fn(q)
            times.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))], statistics.median(cpu)


def settle(db: Database) -> None:
    """On PostgreSQL, what autovacuum does within a minute or so of a large ingest (``VACUUM
    ANALYZE``: visibility and hint bits set, planner statistics of the keyword index read,
    which :mod:`cove.features.search.pg_terms` uses); a no-op on SQLite."""
    if db.is_sqlite:
        return
    with db.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(
            text("VACUUM ANALYZE search_chunks"))


def count(db: Database, cid: int) -> int:
    from sqlalchemy import func

    with db.session() as s:
        return int(s.scalar(select(func.count()).where(Chunk.collection_id == cid)) or 0)


def plot(q: dict[str, tuple[float, float]],
         lat: dict[str, tuple[float, float, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    methods = list(q)
    xs = range(len(methods))
    a.bar([x - 0.2 for x in xs], [q[m][0] for m in methods], 0.4, label="recall@5")
    a.bar([x + 0.2 for x in xs], [q[m][1] for m in methods], 0.4, label="MRR@10")
    a.set_xticks(list(xs), methods)
    a.set_ylim(0, 1)
    a.set_title(f"Python docs, {len(QUESTIONS)} questions")
    a.legend()
    sizes = list(lat)
    xs = range(len(sizes))
    b.bar([x - 0.27 for x in xs], [lat[k][0] for k in sizes], 0.27, label="p50")
    b.bar(list(xs), [lat[k][1] for k in sizes], 0.27, label="p95")
    b.bar([x + 0.27 for x in xs], [lat[k][2] for k in sizes], 0.27, label="CPU (median)")
    b.axhline(100, color="red", linestyle="--", linewidth=1, label="p95 target")
    b.set_xticks(list(xs), sizes)
    b.set_ylabel("ms per hybrid search")
    b.set_title("Query latency")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=Path, default=DOCS)
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--quality-only", action="store_true",
                    help="print recall@5 and MRR only: no latency runs, nothing written")
    args = ap.parse_args()
    if not args.docs.is_dir():
        sys.exit(f"{args.docs} is missing: apt-get install -y python3-doc")
    files = pages(args.docs)
    load_at_start = os.getloadavg()
    figure = PLOT.with_name(f"bench_retrieval_{args.db}.png")
    with tempfile.TemporaryDirectory() as tmp, database(args.db, Path(tmp) / "home") as db:
        index.embed(["warm up"])
        uid, cid, took, cpu = ingest(db, args.docs, files)
        corpus_chunks = count(db, cid)
        print(f"ingest: {len(files)} pages, {corpus_chunks} passages in {took:.1f} s", flush=True)
        q = quality(db, uid, cid)
        for m, (r, mrr) in q.items():
            print(f"{m}: recall@5 {r:.3f}, MRR {mrr:.3f}", flush=True)
        if args.quality_only:
            return

        def searcher(c: int) -> Callable[[str], object]:
            def run(question: str) -> object:
                with db.session() as s:
                    return service.search(s, uid, [c], question, limit=5)
            return run

        small = copy_collection(db, uid, cid, "10k", 10_000)
        settle(db)
        lat = {f"{count(db, small):,} passages": latency(searcher(small))}
        pad_s = pad(db, uid, cid, 100_000)
        settle(db)
        lat[f"{count(db, cid):,} passages"] = latency(searcher(cid))
        for k, (p50, p95, c50) in lat.items():
            print(f"{k}: p50 {p50:.1f} ms, p95 {p95:.1f} ms, CPU {c50:.1f} ms", flush=True)
    best_single = max(q["keyword"][0], q["vector"][0])
    rows = "\n".join(f"| {m} | {r:.3f} | {mrr:.3f} |" for m, (r, mrr) in q.items())
    lrows = "\n".join(f"| {k} | {p50:.1f} | {p95:.1f} | {c50:.1f} |"
                      for k, (p50, p95, c50) in lat.items())
    ratio = q["hybrid"][0] / best_single if best_single else float("inf")
    load = ", ".join(f"{x:.2f}" for x in load_at_start)
    body = f"""Run {dt.date.today().isoformat()} on {machine()}, store {args.db}; load average
{load} (1, 5, 15 min) when the run started (other work on this 2-core machine slows every
latency). Script: `bench/retrieval.py`; questions: `bench/retrieval_questions.py`.

Corpus: Debian's `python3-doc` HTML, {len(files)} pages (indexes left out), {corpus_chunks:,}
passages. {len(QUESTIONS)} questions written for the benchmark, each with its expected page.

| method | recall@5 | MRR@10 |
|---|---|---|
{rows}

Hybrid recall@5 is {ratio:.2f}x the better single method (target 1.1x).

Ingest: {len(files) / took:.1f} pages/s ({took:.1f} s for {len(files)} pages; target 20); the
process used {cpu:.1f} CPU-seconds, {len(files) / cpu:.1f} pages per CPU-second.
Synthetic passages for the 100k collection: embedded at {(100_000 - corpus_chunks) / pad_s:,.0f}
passages/s.

| collection | p50 ms | p95 ms | CPU ms (median) |
|---|---|---|---|
{lrows}

(p95 target at 100k: 100 ms.)

![retrieval]({figure.name})
"""
    write_section(f"Retrieval over documents ({args.db})", body, RESULTS,
                  heading="# Retrieval benchmark\n\nRun by hand: `bench/retrieval.py`.\n")
    plot(q, lat, figure)
    print(body)


if __name__ == "__main__":
    main()
