"""Extraction and chunking outside the model: window-v1 against structure-v1, side by side in one run.

Run by hand (loads the model's tokenizer, takes under a minute):

    .venv/bin/python bench/chunking.py                  # first 1,000 SciFact abstracts, and the wiki pages
    .venv/bin/python bench/chunking.py --abstracts 5183

For each corpus and policy it prints the chunks, tokens per chunk as the model reads them (median and maximum,
with [CLS] and [SEP]), chunks the model would truncate, and CPU seconds for extraction plus chunking, best of
``--runs``. structure-v1's time includes reading the text's tokens with the model's tokenizer (it is the only
policy that does); neither includes the model itself. Target (issue: structure-aware chunks): structure-v1 at
most 10% slower than window-v1 outside the model on the 1,000 abstracts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

# Run as a script, this folder would come first on sys.path, where a sibling module may shadow the stdlib.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from holocron.chunking import ChunkPolicy, embedding_input  # noqa: E402
from holocron.embedding.local import LocalProvider  # noqa: E402
from holocron.extract import extract  # noqa: E402
from holocron.indexer import chunk_document  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "data" / "scifact" / "corpus.jsonl"
SCIFACT_IN_REPO = ROOT / "tests" / "data" / "scifact" / "corpus.jsonl"
WIKI_HTML = ROOT / "tests" / "data" / "wiki-html"
TARGET_SLOWDOWN = 1.10

Document = tuple[str, str]  # (source type, payload)


def scifact(limit: int) -> list[Document]:
    path = SCIFACT if SCIFACT.exists() else SCIFACT_IN_REPO
    documents: list[Document] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if len(documents) >= limit:
                break
            record = json.loads(line)
            documents.append(("text", f"{' '.join(record['title'].split())}\n\n{record['text'].strip()}"))
    return documents


def wiki_pages() -> list[Document]:
    return [("html", path.read_text(encoding="utf-8", errors="replace")) for path in sorted(WIKI_HTML.glob("*.html"))]


def run(documents: list[Document], chunker: Callable[[Document], list[str]]) -> tuple[float, list[str]]:
    started = time.process_time()
    inputs = [text for document in documents for text in chunker(document)]
    return time.process_time() - started, inputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--abstracts", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    provider = LocalProvider()
    tokenizer = provider.tokenizer()
    window_tokens = provider.identity().max_input_tokens or 256
    window = ChunkPolicy.fitted_to_model(window_tokens)
    structure = ChunkPolicy.structured(window_tokens, tokenizer.name)

    def chunker(policy: ChunkPolicy) -> Callable[[Document], list[str]]:
        def chunk(document: Document) -> list[str]:
            result, contexts = chunk_document(extract(*document), policy, tokenizer)
            return [embedding_input(context, span.text) for span, context in zip(result.spans, contexts, strict=True)]

        return chunk

    by_window, by_structure = chunker(window), chunker(structure)

    corpora = {f"SciFact, first {args.abstracts:,} abstracts": scifact(args.abstracts), "wiki pages": wiki_pages()}
    header = f"{'corpus':<34}{'policy':<24}{'chunks':>8}{'median tok':>12}{'max tok':>9}{'truncated':>11}{'CPU s':>9}"
    print(f"extraction + chunking, CPU seconds best of {args.runs}; model window {window_tokens} tokens")
    print(header)
    print("-" * len(header))
    for name, documents in corpora.items():
        seconds: dict[str, float] = {}
        for label, policy, chunker in (
            ("window-v1", window, by_window),
            ("structure-v1", structure, by_structure),
        ):
            best, inputs = min((run(documents, chunker) for _ in range(args.runs)), key=lambda pair: pair[0])
            seconds[label] = best
            counts = provider.count_tokens(inputs)
            truncated = sum(1 for count in counts if count > window_tokens)
            print(
                f"{name:<34}{policy.version.split(':sentence')[0]:<24}{len(inputs):>8,}"
                f"{statistics.median(counts):>12.0f}{max(counts):>9}{truncated:>11}{best:>9.3f}",
                flush=True,
            )
        ratio = seconds["structure-v1"] / max(seconds["window-v1"], 1e-9)
        verdict = "met" if ratio <= TARGET_SLOWDOWN else "not met"
        print(f"{'':<34}structure / window: {ratio:.2f}x (target at most {TARGET_SLOWDOWN:.2f}x: {verdict})")


if __name__ == "__main__":
    main()
