"""The Mandarin polyphone classifier of MaskGCT's G2P: a small BERT exported to ONNX.

Input: ``[CLS]`` followed by one token per character of the (normalised) sentence, ids from the
model's ``vocab.txt`` (unknown characters -> ``[UNK]``; no ``[SEP]``, no lower-casing). Output:
one score row per character over 391 classes; the class of the polyphonic character's row (argmax,
plus one) keys ``polydict.json``, whose values look like ``"长{zhang3}"``. Amphion's
``chinese_model_g2p.BertPolyPredict`` documents the contract; this is our own implementation of it.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np

__all__ = ["PolyphoneBert"]

# BERT's position table has 512 rows, [CLS] takes one.
_MAX_CHARS = 511


class PolyphoneBert:
    def __init__(self, model_dir: str | Path, *, threads: int | None = None) -> None:
        import onnxruntime as ort

        model_dir = Path(model_dir)
        self._token_ids: dict[str, int] = {}
        with open(model_dir / "vocab.txt", encoding="utf-8") as f:
            for index, line in enumerate(f):
                self._token_ids[line.rstrip("\n")] = index
        self._unk = self._token_ids["[UNK]"]
        self._cls = self._token_ids["[CLS]"]
        with open(model_dir / "polydict.json", encoding="utf-8") as f:
            self._classes: dict[str, str] = json.load(f)

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(model_dir / "poly_bert_model.onnx"), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._lock = threading.Lock()

    def pinyin(self, sentence: str, index: int) -> str:
        """Tone-numbered pinyin (e.g. ``"zhang3"``) the model gives ``sentence[index]``."""
        start = 0
        if len(sentence) > _MAX_CHARS:  # the reference would fail here; read a window around it
            start = min(max(0, index - _MAX_CHARS // 2), len(sentence) - _MAX_CHARS)
            sentence = sentence[start : start + _MAX_CHARS]
        ids = [self._cls] + [self._token_ids.get(ch, self._unk) for ch in sentence]
        with self._lock:
            scores = self._session.run(["outputs"], {"input_ids": np.asarray([ids], dtype=np.int32)})[0]
        label = self._classes[str(int(np.argmax(scores[0, index - start])) + 1)]
        return label[2:-1]  # "长{zhang3}" -> "zhang3"
