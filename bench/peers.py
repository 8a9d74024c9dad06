"""Holocron against LangChain's index() + SQLRecordManager and LlamaIndex's IngestionPipeline, side by side.

Run by hand (it loads the real model in four processes and takes about a quarter of an hour on 2 cores):

    .venv/bin/python bench/peers.py                   # first 1,000 SciFact abstracts
    .venv/bin/python bench/peers.py --abstracts 300   # a quicker look

The peers are installed, pinned, into their own virtual environment (`.holocron/bench/peers-venv`) by this
script, so the project's dependencies stay clean. Every pipeline runs in its own process on the same texts
(title + " " + abstract) with the same all-MiniLM-L6-v2 weights on CPU torch, with the same thread count:

- bare: the model alone, `encode(texts, batch_size=32)` over the raw abstracts, for memory and speed;
- holocron: `Holocron.index()` on a manifest of text sources (its default window chunking);
- langchain: `RecursiveCharacterTextSplitter(863, 86)` (Holocron's window), `index(cleanup="incremental")`
  with a `SQLRecordManager` on SQLite and an `InMemoryVectorStore`, `HuggingFaceEmbeddings` defaults;
- llamaindex: `SentenceSplitter(200 tokens, 20)`, `IngestionPipeline` with a docstore (upserts) and a
  vector store, `HuggingFaceEmbedding` defaults.

For each: the cold index (model loaded and warmed before timing), the seconds inside the model's encode calls
and outside them, the texts each pipeline sent to the model encoded again bare (`batch_size=32`, same
process, same loaded model) and the ratio of the two, an unchanged rerun, a rerun with 10 abstracts edited,
and peak RSS at the end of the cold index.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "data" / "scifact" / "corpus.jsonl"
PEERS_VENV = ROOT / ".holocron" / "bench" / "peers-venv"
# Pinned so that a rerun measures the same peers; torch first, from the CPU wheel.
PEER_PACKAGES = [
    "sentence-transformers==6.2.0",
    "langchain-core==1.8.1",
    "langchain-community==0.4.2",
    "langchain-text-splitters==1.1.3",
    "langchain-huggingface==1.2.3",
    "llama-index-core==0.14.25",
    "llama-index-embeddings-huggingface==0.8.0",
]
EDITED = 10
THREADS = 2


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def read_abstracts(path: Path, limit: int) -> list[tuple[str, str]]:
    docs: list[tuple[str, str]] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if len(docs) >= limit:
                break
            doc = json.loads(line)
            docs.append((f"scifact-{doc['_id']}", f"{doc['title']} {doc['text']}"))
    return docs


def edited(docs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The same corpus with EDITED abstracts, spread through it, given one more sentence each."""
    step = max(1, len(docs) // EDITED)
    marked = set(range(0, len(docs), step)[:EDITED])
    return [(sid, text + " This abstract was revised." if i in marked else text) for i, (sid, text) in enumerate(docs)]


class ModelClock:
    """Time spent inside the model's encode calls, and every text those calls were given."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.texts: list[str] = []
        self.counting = True

    def wrap(self, encode: Callable[..., Any]) -> Callable[..., Any]:
        def timed(texts: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return encode(texts, *args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
                if self.counting:
                    self.texts.extend(texts)

        return timed


def load_model(model_dir: str) -> Any:
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(THREADS)
    return SentenceTransformer(model_dir, device="cpu", local_files_only=True)


def bare_encode_seconds(model: Any, texts: list[str]) -> float:
    started = time.perf_counter()
    model.encode(texts, batch_size=32, convert_to_numpy=True, show_progress_bar=False)
    return time.perf_counter() - started


# -- one process per pipeline -----------------------------------------------------------------------------


def run_bare(docs: list[tuple[str, str]], model_dir: str, work: Path) -> dict[str, Any]:
    model = load_model(model_dir)
    model.encode(["warm up the model"] * 8)
    loaded = peak_rss_mib()
    seconds = bare_encode_seconds(model, [text for _, text in docs])
    return {"cold_s": seconds, "model_s": seconds, "texts": len(docs), "rss_loaded": loaded, "rss": peak_rss_mib()}


def run_holocron(docs: list[tuple[str, str]], model_dir: str, work: Path) -> dict[str, Any]:
    from holocron.config import Settings
    from holocron.embedding.local import LocalProvider
    from holocron.service import Holocron

    def manifest(version: list[tuple[str, str]]) -> Path:
        path = work / "manifest.json"
        sources = [{"source_id": sid, "source_type": "text", "content": text} for sid, text in version]
        path.write_text(json.dumps({"version": 1, "sources": sources}))
        return path

    from holocron.embedding.registry import build_provider

    settings = Settings(home=work / "home", local_model_path=Path(model_dir))
    provider = build_provider(settings)
    assert isinstance(provider, LocalProvider)
    provider.threads = THREADS
    clock = ModelClock()
    provider._encode = clock.wrap(provider._encode)  # type: ignore[method-assign]
    with Holocron(settings, provider=provider) as holo:
        export: dict[str, float] = {}
        prepare = holo.prepare_queries

        def timed_export() -> float | None:
            model_before = clock.seconds
            started = time.perf_counter()
            try:
                return prepare()
            finally:
                export.setdefault("seconds", time.perf_counter() - started)
                clock.seconds = model_before  # the export's probe encodes are not indexing

        holo.prepare_queries = timed_export  # type: ignore[method-assign]
        _ = holo.space
        provider.embed(["warm up the model"] * 8)
        clock.seconds, clock.texts = 0.0, []
        loaded = peak_rss_mib()
        result = measure(lambda version: holo.index(manifest=manifest(version)), docs, clock, provider.model, loaded)
    result["cold_s"] -= export.get("seconds", 0.0)
    result["export_s"] = export.get("seconds", 0.0)
    return result


def run_langchain(docs: list[tuple[str, str]], model_dir: str, work: Path) -> dict[str, Any]:
    import torch
    from langchain_community.indexes._sql_record_manager import SQLRecordManager
    from langchain_core.documents import Document
    from langchain_core.indexing import index
    from langchain_core.vectorstores import InMemoryVectorStore
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    torch.set_num_threads(THREADS)
    embeddings = HuggingFaceEmbeddings(model_name=model_dir, model_kwargs={"device": "cpu", "local_files_only": True})
    clock = ModelClock()
    object.__setattr__(embeddings, "embed_documents", clock.wrap(embeddings.embed_documents))
    embeddings.embed_documents(["warm up the model"] * 8)
    clock.seconds, clock.texts = 0.0, []
    loaded = peak_rss_mib()
    store = InMemoryVectorStore(embeddings)
    records = SQLRecordManager("scifact", db_url=f"sqlite:///{work / 'records.sqlite'}")
    records.create_schema()
    splitter = RecursiveCharacterTextSplitter(chunk_size=863, chunk_overlap=86)

    def run(version: list[tuple[str, str]]) -> None:
        documents = [Document(page_content=text, metadata={"source": sid}) for sid, text in version]
        index(splitter.split_documents(documents), records, store, cleanup="incremental", source_id_key="source")

    return measure(run, docs, clock, embeddings._client, loaded)


def run_llamaindex(docs: list[tuple[str, str]], model_dir: str, work: Path) -> dict[str, Any]:
    import torch
    from llama_index.core import Document
    from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.core.storage.docstore import SimpleDocumentStore
    from llama_index.core.vector_stores import SimpleVectorStore
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    torch.set_num_threads(THREADS)
    embed = HuggingFaceEmbedding(model_name=model_dir, device="cpu", local_files_only=True)
    clock = ModelClock()
    object.__setattr__(embed, "_get_text_embeddings", clock.wrap(embed._get_text_embeddings))
    embed.get_text_embedding_batch(["warm up the model"] * 8)
    clock.seconds, clock.texts = 0.0, []
    loaded = peak_rss_mib()
    pipeline = IngestionPipeline(
        transformations=[SentenceSplitter(chunk_size=200, chunk_overlap=20), embed],
        docstore=SimpleDocumentStore(),
        vector_store=SimpleVectorStore(),
        docstore_strategy=DocstoreStrategy.UPSERTS,
    )

    def run(version: list[tuple[str, str]]) -> None:
        pipeline.run(documents=[Document(text=text, id_=sid) for sid, text in version])
        pipeline.persist(str(work / "pipeline"))

    return measure(run, docs, clock, embed._model, loaded)


def measure(
    run: Callable[[list[tuple[str, str]]], Any],
    docs: list[tuple[str, str]],
    clock: ModelClock,
    model: Any,
    loaded: float,
) -> dict[str, Any]:
    """The cold run, the same texts encoded bare, the unchanged rerun and the edited one, for one pipeline."""
    started = time.perf_counter()
    run(docs)
    cold = time.perf_counter() - started
    rss = peak_rss_mib()
    model_s, sent = clock.seconds, list(clock.texts)
    clock.counting = False
    bare = bare_encode_seconds(model, sent)
    rerun = _timed_rerun(clock, lambda: run(docs))
    edit = _timed_rerun(clock, lambda: run(edited(docs)))
    return _result(cold, model_s, sent, bare, rerun, edit, loaded, rss)


def _timed_rerun(clock: ModelClock, rerun: Callable[[], Any]) -> tuple[float, int]:
    clock.counting, clock.texts = True, []
    started = time.perf_counter()
    rerun()
    seconds = time.perf_counter() - started
    clock.counting = False
    return seconds, len(clock.texts)


def _result(
    cold: float,
    model_s: float,
    sent: list[str],
    bare: float,
    rerun: tuple[float, int],
    edit: tuple[float, int],
    loaded: float,
    rss: float,
) -> dict[str, Any]:
    return {
        "cold_s": cold,
        "model_s": model_s,
        "texts": len(sent),
        "bare_s": bare,
        "rerun_s": rerun[0],
        "rerun_texts": rerun[1],
        "edit_s": edit[0],
        "edit_texts": edit[1],
        "rss_loaded": loaded,
        "rss": rss,
    }


PIPELINES: dict[str, Callable[[list[tuple[str, str]], str, Path], dict[str, Any]]] = {
    "bare": run_bare,
    "holocron": run_holocron,
    "langchain": run_langchain,
    "llamaindex": run_llamaindex,
}
IN_PEERS_VENV = {"langchain", "llamaindex"}


# -- the parent ---------------------------------------------------------------------------------------------


def peers_python() -> Path:
    """The peers' own environment, made once; a changed pin list makes it again."""
    python = PEERS_VENV / "bin" / "python"
    stamp = PEERS_VENV / "packages.txt"
    wanted = "\n".join(["torch==2.13.0", *PEER_PACKAGES])
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"installing the peers into {PEERS_VENV} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(PEERS_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "torch==2.13.0"], check=True)
    subprocess.run([*pip, *PEER_PACKAGES], check=True)
    stamp.write_text(wanted)
    return python


def model_folder() -> str:
    from holocron.embedding.local import bundled_model_path

    return str(bundled_model_path())


def run_child(name: str, corpus: Path, model_dir: str) -> dict[str, Any]:
    python = peers_python() if name in IN_PEERS_VENV else Path(sys.executable)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [str(python), __file__, "--child", name, "--corpus", str(corpus), "--model", model_dir]
    print(f"running {name} ...", flush=True)
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def print_table(rows: dict[str, dict[str, Any]], abstracts: int) -> None:
    names = [name for name in ("langchain", "llamaindex", "holocron") if name in rows]
    titles = {"langchain": "LangChain", "llamaindex": "LlamaIndex", "holocron": "Holocron"}
    lines: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("texts sent to the model", lambda r: f"{r['texts']:,}"),
        ("cold index, s", lambda r: f"{r['cold_s']:.1f}"),
        ("seconds inside the model", lambda r: f"{r['model_s']:.1f}"),
        ("seconds outside the model", lambda r: f"{r['cold_s'] - r['model_s']:.2f}"),
        ("bare encode(batch 32) of those texts, s", lambda r: f"{r['bare_s']:.1f}"),
        ("model time / bare encode", lambda r: f"{r['model_s'] / r['bare_s']:.2f}x"),
        ("cold index / bare encode", lambda r: f"{r['cold_s'] / r['bare_s']:.2f}x"),
        ("unchanged rerun", lambda r: f"{r['rerun_s']:.3f} s, {r['rerun_texts']} texts"),
        (f"{EDITED} abstracts edited", lambda r: f"{r['edit_s']:.2f} s, {r['edit_texts']} texts"),
        ("RSS with the model loaded, MiB", lambda r: f"{r['rss_loaded']:,.0f}"),
        ("peak RSS, MiB", lambda r: f"{r['rss']:,.0f}"),
        ("one-time ONNX query export, s", lambda r: f"{r['export_s']:.1f}" if "export_s" in r else "-"),
    ]
    width = max(len(label) for label, _ in lines) + 2
    print(f"\nfirst {abstracts:,} SciFact abstracts, all-MiniLM-L6-v2 on CPU torch, {THREADS} threads")
    print(f"{'':{width}}" + "".join(f"{titles[name]:>22}" for name in names))
    for label, cell in lines:
        print(f"{label:{width}}" + "".join(f"{cell(rows[name]):>22}" for name in names))
    if "bare" in rows:
        bare = rows["bare"]
        print(
            f"\nthe model alone: {abstracts:,} abstracts in {bare['cold_s']:.1f} s with encode(batch_size=32); "
            f"RSS {bare['rss_loaded']:,.0f} MiB loaded, peak {bare['rss']:,.0f} MiB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--abstracts", type=int, default=1000)
    parser.add_argument("--only", choices=sorted(PIPELINES), action="append", help="run only these pipelines")
    parser.add_argument("--child", choices=sorted(PIPELINES), help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        docs = [tuple(pair) for pair in json.loads(args.corpus.read_text())]
        with tempfile.TemporaryDirectory() as work:
            print(json.dumps(PIPELINES[args.child](docs, args.model, Path(work))))  # type: ignore[arg-type]
        return
    if not SCIFACT.exists():
        sys.exit(f"SciFact not found at {SCIFACT}: this benchmark needs the full corpus")
    docs = read_abstracts(SCIFACT, args.abstracts)
    model_dir = model_folder()
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.json"
        corpus.write_text(json.dumps(docs))
        for name in args.only or ["bare", "holocron", "langchain", "llamaindex"]:
            rows[name] = run_child(name, corpus, model_dir)
    print_table(rows, len(docs))


if __name__ == "__main__":
    main()
