"""One model, three providers: the same chunk embedded in process, over Ollama's API and over OpenAI's API
(both against ``holocron serve-embeddings``) gives the same vector (cosine >= 0.999); and task prefixes from the
model catalog go into the space's preprocess policy so that index and query always match.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from datafiles import data_text
from holocron.chunking import ChunkPolicy, chunk_text
from holocron.config import Settings
from holocron.embedding.base import PreprocessPolicy, Purpose
from holocron.embedding.catalog import lookup, preprocess_for
from holocron.embedding.local import LocalProvider
from holocron.embedding.ollama import OllamaProvider
from holocron.embedding.openai import OpenAIProvider
from holocron.embedding.registry import build_provider
from holocron.extract import extract
from holocron.vectors import cosine
from servers import Misbehaviour, embedding_server, local_provider, misbehaving_server


def real_chunks() -> list[str]:
    """Chunks of a served wiki page and an OpenAlex work, cut as the indexer cuts them for this model."""
    policy = ChunkPolicy.fitted_to_model(256)
    page = data_text("wiki-html/trafilatura__stardewvalleywiki.com.penny.html")
    work = data_text("openalex/papers__work.json")
    chunks: list[str] = []
    for source_type, payload in (("html", page), ("openalex", work)):
        spans = chunk_text(extract(source_type, payload).text, policy).spans
        chunks.extend(span.text for span in spans[:4])
    return chunks


@pytest.mark.model
@pytest.mark.parametrize("purpose", [Purpose.DOCUMENT, Purpose.QUERY])
def test_the_same_chunk_through_all_three_providers(purpose: Purpose) -> None:
    local = local_provider()
    url = embedding_server().url
    providers = {
        "ollama": OllamaProvider(local.model_name, url),
        "openai-float": OpenAIProvider(local.model_name, f"{url}/v1", encoding_format="float"),
        "openai-base64": OpenAIProvider(local.model_name, f"{url}/v1", encoding_format="base64"),
    }
    chunks = real_chunks()
    assert len(chunks) >= 5
    reference = local.embed(chunks, purpose)
    for name, provider in providers.items():
        assert provider.identity().model_digest == local.identity().model_digest, name
        vectors = provider.embed(chunks, purpose)
        similarities = [cosine(a, b) for a, b in zip(reference, vectors, strict=True)]
        assert min(similarities) >= 0.999, (name, similarities)


@pytest.mark.model
def test_prefixed_parity_and_prefixes_change_the_vector() -> None:
    """With a prefix policy every provider applies it the same way (and it really reaches the model)."""
    base = local_provider()
    policy = PreprocessPolicy(document_prefix="passage: ", query_prefix="query: ")
    local = LocalProvider(base.model_name, base.model_path, preprocess=policy)
    local.__dict__["model"] = base.model  # share the loaded model
    url = embedding_server().url
    text = ["Wellington is the capital city of New Zealand."]
    for purpose in (Purpose.DOCUMENT, Purpose.QUERY):
        expected = local.embed(text, purpose)[0]
        for provider in (
            OllamaProvider(base.model_name, url, preprocess=policy),
            OpenAIProvider(base.model_name, f"{url}/v1", preprocess=policy),
        ):
            assert cosine(provider.embed(text, purpose)[0], expected) >= 0.999
    assert cosine(local.embed(text, Purpose.DOCUMENT)[0], base.embed(text, Purpose.DOCUMENT)[0]) < 0.9999


# --- the catalog's task prefixes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "document", "query", "dimensions"),
    [
        ("nomic-embed-text", "search_document: ", "search_query: ", 768),
        ("nomic-embed-text:latest", "search_document: ", "search_query: ", 768),
        ("nomic-embed-text:v1.5", "search_document: ", "search_query: ", 768),
        ("nomic-ai/nomic-embed-text-v1.5", "search_document: ", "search_query: ", 768),
        ("intfloat/e5-base-v2", "passage: ", "query: ", 768),
        ("intfloat/multilingual-e5-large", "passage: ", "query: ", 1024),
        ("BAAI/bge-small-en-v1.5", "", "Represent this sentence for searching relevant passages: ", 384),
        ("mxbai-embed-large", "", "Represent this sentence for searching relevant passages: ", 1024),
        ("bge-m3", "", "", 1024),
        ("all-minilm:22m", "", "", 384),
        ("sentence-transformers/all-MiniLM-L6-v2", "", "", 384),
        ("text-embedding-3-small", "", "", 1536),
    ],
)
def test_catalog_prefixes_and_dimensions(name: str, document: str, query: str, dimensions: int) -> None:
    known = lookup(name)
    assert known is not None
    assert known.dimensions == dimensions
    assert preprocess_for(name) == PreprocessPolicy(document_prefix=document, query_prefix=query)


def test_unknown_models_get_no_prefix_and_settings_override_the_catalog() -> None:
    assert lookup("my-own-embedder") is None
    assert preprocess_for("my-own-embedder") == PreprocessPolicy()
    assert preprocess_for("nomic-embed-text", query_prefix="") == PreprocessPolicy("search_document: ", "")


def test_nomic_prefixes_reach_the_server_and_the_space_policy(tmp_path: Path) -> None:
    """Configured like the inventory (nomic-embed-text on Ollama): documents and queries carry their prefixes."""
    with misbehaving_server(Misbehaviour(model="nomic-embed-text", dimensions=768)) as (url, script):
        settings = Settings(home=tmp_path, embed_provider="ollama", ollama_base_url=url)
        provider = build_provider(settings)
        identity = provider.identity()
        assert identity.model_name == "nomic-embed-text"
        assert identity.preprocess == PreprocessPolicy("search_document: ", "search_query: ")
        script.set()
        provider.embed(["Penny's birthday"], Purpose.DOCUMENT)
        provider.embed(["When is Penny's birthday?"], Purpose.QUERY)
        sent = [r.body["input"] for r in script.embed_requests]
        assert sent == [["search_document: Penny's birthday"], ["search_query: When is Penny's birthday?"]]

        from holocron.service import Holocron

        with Holocron(settings, provider=provider) as holo:
            assert holo.space.preprocess == identity.preprocess  # recorded with the space
            assert np.isfinite(provider.embed(["x"])).all()


@pytest.mark.model
def test_local_token_budget_batching_keeps_order_and_vectors() -> None:
    base = local_provider()
    budgeted = LocalProvider(base.model_name, base.model_path, batch_tokens=300)
    budgeted.__dict__["model"] = base.model
    chunks = real_chunks()
    calls: list[int] = []
    encode = budgeted._encode

    def counting(inputs: list[str]) -> np.ndarray:
        calls.append(len(inputs))
        return encode(inputs)

    budgeted._encode = counting  # type: ignore[method-assign]
    vectors = budgeted.embed(chunks)
    assert len(calls) > 1 and sum(calls) == len(chunks)
    for a, b in zip(vectors, base.embed(chunks), strict=True):
        assert cosine(a, b) >= 0.9999
