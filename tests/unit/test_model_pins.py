"""The model files (MiniLM ONNX, spaCy NER, SmolLM2 GGUF) are checked against the SHA-256 values
kept in Bulwark's code before they are loaded: the installed files pass, a copy with one byte
changed (or a file added) is refused, naming the file and both hashes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from dlp.adapters.presidio import SPACY_MODEL_FILES, load_spacy, model_dir, verified_model_dir
from gateway.adapters.base import ModelMessage, ProviderError, ProviderRequest
from gateway.adapters.llamacpp import SMOLLM2_SHA256, LlamaCppProvider, default_model_path
from kernel.settings import ModelEndpointSettings
from kernel.supply_chain import ModelFileMismatch, sha256_file, verify_file
from retrieval.adapters.minilm import MODEL_SHA256, OnnxMiniLMEmbedder, model_path


def tampered_copy(source: Path, target: Path, offset: int | None = None) -> Path:
    """``source`` copied to ``target`` with one byte flipped (in the middle by default)."""
    shutil.copyfile(source, target)
    with open(target, "r+b") as file:
        file.seek(offset if offset is not None else os.path.getsize(target) // 2)
        byte = file.read(1)
        file.seek(-1, os.SEEK_CUR)
        file.write(bytes([byte[0] ^ 0x01]))
    return target


def test_the_installed_model_files_are_the_pinned_ones() -> None:
    assert sha256_file(model_path()) == MODEL_SHA256
    assert sha256_file(Path(default_model_path())) == SMOLLM2_SHA256
    assert verified_model_dir() == model_dir()
    assert len(SPACY_MODEL_FILES) > 20 and "ner/model" in SPACY_MODEL_FILES


def test_a_changed_minilm_file_is_refused_before_onnxruntime_sees_it(tmp_path: Path) -> None:
    tampered = tampered_copy(model_path(), tmp_path / "model.onnx")
    with pytest.raises(ModelFileMismatch) as refused:
        OnnxMiniLMEmbedder(threads=1, model_file=tampered).load()
    message = str(refused.value)
    assert str(tampered) in message and MODEL_SHA256 in message
    assert sha256_file(tampered) in message
    # A request that needed the model answers 503, without the server's paths or hashes.
    assert refused.value.status == 503
    assert str(tampered) not in refused.value.detail and MODEL_SHA256 not in refused.value.detail


def test_a_changed_spacy_weight_file_or_an_added_file_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(model_dir(), copy)
    assert load_spacy(trimmed=True, path=copy).pipe_names == ["ner"]  # the intact copy loads
    tampered_copy(model_dir() / "ner" / "model", copy / "ner" / "model")
    with pytest.raises(ModelFileMismatch, match=r"ner/model has sha256 [0-9a-f]{64}, but"):
        load_spacy(trimmed=True, path=copy)
    shutil.copyfile(model_dir() / "ner" / "model", copy / "ner" / "model")
    (copy / "ner" / "extra").write_bytes(b"not part of the model")
    with pytest.raises(ModelFileMismatch, match=r"unexpected \['ner/extra'\]"):
        load_spacy(trimmed=True, path=copy)


async def test_the_packaged_gguf_passes_its_check_and_generates() -> None:
    provider = LlamaCppProvider(None, context_window=512, threads=1, max_concurrency=1)
    try:
        message = ModelMessage(role="user", content="Say hello.")
        request = ProviderRequest(model="smollm2", messages=(message,), max_tokens=4)
        completion = await provider.complete(request)
        assert completion.usage is not None and completion.usage.output_tokens > 0
    finally:
        await provider.aclose()


async def test_a_changed_gguf_file_is_refused_and_the_endpoint_fails_over(tmp_path: Path) -> None:
    tampered = tampered_copy(Path(default_model_path()), tmp_path / "smollm2.gguf")
    provider = LlamaCppProvider(
        str(tampered),
        model_sha256=SMOLLM2_SHA256,
        context_window=512,
        threads=1,
        max_concurrency=1,
    )
    try:
        request = ProviderRequest(model="smollm2", messages=(), max_tokens=4)
        with pytest.raises(ProviderError, match="not the pinned one") as refused:
            await provider.complete(request)
        assert refused.value.kind == "connect"  # the gateway falls back to another endpoint
        assert provider._llama is None  # llama.cpp never read the file
    finally:
        await provider.aclose()


def test_a_configured_gguf_path_needs_its_sha256() -> None:
    spec = {"name": "own", "tier": "small", "provider": "llamacpp-local", "model": "m"}
    with pytest.raises(ValidationError, match="model_path needs model_sha256"):
        ModelEndpointSettings(**spec, model_path="/models/own.gguf")
    ModelEndpointSettings(**spec, model_path="/models/own.gguf", model_sha256=SMOLLM2_SHA256)
    with pytest.raises(ValueError, match="needs its sha256"):
        LlamaCppProvider("/models/own.gguf", context_window=512, threads=1, max_concurrency=1)


def test_a_file_replaced_after_its_check_is_hashed_again(tmp_path: Path) -> None:
    target = tmp_path / "model.bin"
    target.write_bytes(b"pinned contents")
    pinned = sha256_file(target)
    assert verify_file(target, pinned, what="a model") == target
    # Rewritten in place, same size and inode: the cached check no longer covers it.
    before = target.stat().st_mtime_ns
    target.write_bytes(b"pinned contentz")
    os.utime(target, ns=(before + 10**9, before + 10**9))
    with pytest.raises(ModelFileMismatch, match="a model"):
        verify_file(target, pinned, what="a model")
