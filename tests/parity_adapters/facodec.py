"""Parity adapter for FACodec (fixture ``codec_facodec``: Amphion ``ns3_codec`` FACodecEncoder /
FACodecDecoder).

Built through the product loading code: ``read_facodec_config`` on the folder's ``config.json`` (the
README constructor kwargs plus the timbre-encoder sizes) and :meth:`FACodec.from_files` on the two
weight files, which mirror the official ``ns3_facodec_encoder.bin`` / ``ns3_facodec_decoder.bin``
(strict load, training-only heads skipped, weight norm folded).

The ``decoder_quantize*`` cases are batched reference runs, so the decoder is asked to reproduce
the reference's batch-position-indexed timbre encoding (``reference_batch_positions=True``); the
serving API never does. The reference's ``commit_loss`` is all zeros in eval mode (one per
codebook); the product does not compute training losses, so the adapter states that zero.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from models.facodec import FACodec, read_facodec_config

from . import register
from .base import Adapter


class FACodecAdapter(Adapter):
    def load(self, folder: Path) -> FACodec:
        config = read_facodec_config(folder / "config.json")
        return FACodec.from_files(folder / "model_encoder.safetensors", folder / "model_decoder.safetensors", config)

    def run(self, component: FACodec, case_name: str, call: str, inputs: dict[str, Any],
            args: dict[str, Any], *, case: dict[str, Any]) -> dict[str, Any]:
        encoder, decoder = component.encoder, component.decoder
        part = case.get("component")
        with torch.inference_mode():
            if part == "encoder" and case_name.startswith("encoder_forward"):
                return {"enc_out": encoder(inputs["wav"])}
            if part == "decoder" and case_name.startswith("decoder_quantize"):
                if args != {"eval_vq": False, "vq": True}:
                    raise NotImplementedError(f"codec_facodec/{case_name}: unexpected args {args}")
                vq_post_emb, vq_id, quantized, spk_embs = decoder(inputs["enc_out"], reference_batch_positions=True)
                prosody, content, residual = quantized
                return {
                    "vq_post_emb": vq_post_emb, "vq_id": vq_id, "commit_loss": torch.zeros(vq_id.shape[0]),
                    "quantized_prosody": prosody, "quantized_content": content, "quantized_residual": residual,
                    "spk_embs": spk_embs,
                }
            if part == "decoder" and case_name.startswith("vq2emb"):
                use_residual = bool(args.get("use_residual_code", True))
                return {"emb": decoder.vq2emb(inputs["vq_id"], use_residual_code=use_residual)}
            if part == "decoder" and case_name.startswith("inference"):
                latents = inputs["emb"] if "emb" in inputs else inputs["vq_post_emb"]
                return {"wav": decoder.inference(latents, inputs["spk_embs"])}
        raise NotImplementedError(f"codec_facodec: no adapter for case {case_name!r} ({part})")


register("codec_facodec", FACodecAdapter())
