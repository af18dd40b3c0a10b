"""Parity adapters for MaskGCT's codecs (maskgct_semantic_codec, maskgct_acoustic_codec).

Both are built through the product loading code: ``parse_*_config`` on the folder's
``config.json`` (the reference's section shape), ``load_state_dict_file`` on the weight files and the
``build_*`` functions (strict load with readable errors, weight norm folded, eval mode).

The acoustic folder mirrors the official split: ``model_encoder.safetensors`` (official
``acoustic_codec/model.safetensors``) and ``model_decoder.safetensors`` (official
``acoustic_codec/model_1.safetensors``); each case names the file(s) it uses under ``weights`` and
the matching config section(s) under ``config_key``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from models.maskgct.acoustic_codec import AcousticCodec
from models.maskgct.checkpoints import (
    build_acoustic_codec,
    build_semantic_codec,
    load_state_dict_file,
)
from models.maskgct.configs import (
    parse_acoustic_codec_config,
    parse_semantic_codec_config,
    read_codec_config,
)
from models.maskgct.semantic_codec import SemanticCodec

from . import register
from .base import Adapter


class SemanticCodecAdapter(Adapter):
    def load(self, folder: Path) -> SemanticCodec:
        config = parse_semantic_codec_config(read_codec_config(folder / "config.json"))
        path = folder / "model.safetensors"
        return build_semantic_codec(config, load_state_dict_file(path), source=str(path))

    def run(self, component: SemanticCodec, case_name: str, call: str, inputs: dict[str, Any],
            args: dict[str, Any], *, case: dict[str, Any]) -> dict[str, Any]:
        codec = component
        with torch.inference_mode():
            if case_name == "quantize":
                codes, quantized = codec.quantize(inputs["x"])
                return {"codes": codes, "quantized": quantized}
            if case_name == "encoder":
                return {"latent": codec.encode(inputs["x"])}
            if case_name == "forward":
                x_rec, codes = codec(inputs["x"])
                return {"x_rec": x_rec, "all_indices": codes}
            if case_name == "decode_codes":
                emb = codec.vq2emb(inputs["codes"])
                return {"emb": emb, "x_rec": codec.decode(emb)}
        raise NotImplementedError(f"maskgct_semantic_codec: no adapter for case {case_name!r}")


# The fixture's file for each module (official: acoustic_codec/model.safetensors and model_1.safetensors).
_PART_FILES = {"encoder": "model_encoder.safetensors", "decoder": "model_decoder.safetensors"}


class AcousticCodecAdapter(Adapter):
    def load(self, folder: Path) -> AcousticCodec:
        config = parse_acoustic_codec_config(read_codec_config(folder / "config.json"))
        enc_path, dec_path = (folder / _PART_FILES[part] for part in ("encoder", "decoder"))
        return build_acoustic_codec(
            config, load_state_dict_file(enc_path), load_state_dict_file(dec_path),
            sources=(str(enc_path), str(dec_path)),
        )

    @staticmethod
    def _parts(case: dict[str, Any]) -> set[str]:
        """Which module(s) the case's ``weights`` name (checked against its ``config_key``)."""
        files = case.get("weights")
        files = [files] if isinstance(files, str) else list(files or [])
        keys = case.get("config_key")
        keys = [keys] if isinstance(keys, str) else list(keys or [])
        by_file = {f: p for p, f in _PART_FILES.items()}
        parts = [by_file.get(f) for f in files]
        if not files or None in parts or (keys and keys != parts):
            raise ValueError(f"maskgct_acoustic_codec/{case['name']}: unexpected weights {files!r} / config_key {keys!r}")
        return set(parts)  # type: ignore[arg-type]

    def run(self, component: AcousticCodec, case_name: str, call: str, inputs: dict[str, Any],
            args: dict[str, Any], *, case: dict[str, Any]) -> dict[str, Any]:
        parts = self._parts(case)
        codec = component
        enc, dec = codec.encoder, codec.decoder
        with torch.inference_mode():
            if case_name == "encoder" and parts == {"encoder"}:
                return {"latent": enc(inputs["wav"])}
            if case_name == "quantize" and parts == {"decoder"}:
                quantized, codes = dec.quantize(inputs["latent"])
                return {"codes": codes.permute(1, 2, 0), "quantized": quantized}
            if case_name in ("vq2emb", "vq2emb_2q") and parts == {"decoder"}:
                emb = dec.vq2emb(inputs["codes"].permute(2, 0, 1), n_quantizers=int(args["n_quantizers"]))
                return {"emb": emb}
            if case_name == "decode" and parts == {"decoder"}:
                emb = inputs["emb"]
                return {"backbone": dec.model.backbone(emb), "wav": dec.decode(emb)}
            if case_name == "roundtrip" and parts == {"encoder", "decoder"}:
                codes = codec.encode(inputs["wav"])
                wav_rec = codec.decode(codes, n_quantizers=int(args["n_quantizers"]))
                quantized, _ = dec.quantize(enc(inputs["wav"]))
                return {"codes": codes, "wav_rec": wav_rec, "wav_from_quantized": dec.decode(quantized)}
        raise NotImplementedError(f"maskgct_acoustic_codec: no adapter for case {case_name!r} with {sorted(parts)}")


register("maskgct_semantic_codec", SemanticCodecAdapter())
register("maskgct_acoustic_codec", AcousticCodecAdapter())
