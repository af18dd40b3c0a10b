"""Parity adapter for DualCodec (fixture ``codec_dualcodec``).

Built through the product code: ``parse_dualcodec_config`` on the folder's ``config.json`` (the
reference's Hydra layout), ``load_state_dict_file`` on ``model.safetensors`` (the official flat key
layout) and ``build_dualcodec`` (strict load, weight norm folded, eval mode). The semantic
normalisation case runs :class:`SemanticNormPool` with the case's stats and pooling factor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.core.checkpoints import load_state_dict_file
from models.dualcodec import DualCodec, SemanticNormPool, build_dualcodec, parse_dualcodec_config, read_dualcodec_config

from . import register
from .base import Adapter


class DualCodecAdapter(Adapter):
    def load(self, folder: Path) -> DualCodec:
        config = parse_dualcodec_config(read_dualcodec_config(folder / "config.json"))
        path = folder / "model.safetensors"
        return build_dualcodec(config, load_state_dict_file(path), source=str(path))

    def run(self, component: DualCodec, case_name: str, call: str, inputs: dict[str, Any],
            args: dict[str, Any], *, case: dict[str, Any]) -> dict[str, Any]:
        codec = component
        if case_name == "semantic_norm_pool":
            norm_pool = SemanticNormPool(inputs["mean"], inputs["var"], int(args["pool_factor"]))
            return {"semantic_repr": norm_pool(inputs["raw_features"])}
        if case_name.startswith("encode_"):
            semantic_codes, acoustic_codes = codec.encode(
                inputs["audio"], inputs["semantic_repr"], int(args["num_quantizers"]),
                sample_rate=int(args["sample_rate"]),
            )
            if args.get("acoustic_codes_is_none"):
                assert acoustic_codes is None, "acoustic codes were expected to be None"
                return {"semantic_codes": semantic_codes}
            return {"semantic_codes": semantic_codes, "acoustic_codes": acoustic_codes}
        if case_name == "semantic_quantize":
            return {"codes": codec.semantic_quantize(inputs["semantic_repr"])}
        if case_name.startswith("decode_"):
            return {"audio": codec.decode(inputs["semantic_codes"], inputs.get("acoustic_codes"))}
        raise NotImplementedError(f"codec_dualcodec: no adapter for case {case_name!r}")


register("codec_dualcodec", DualCodecAdapter())
