"""Parity adapters for Amphion's own text-to-audio model (fixtures ``tta_audioldm_amphion_*``).

Every component is built by the product's loaders in ``models.audioldm.pipeline`` from the folder's
files, as the official path builds them from the hub files:

* ``tta_audioldm_amphion_unet``: ``parse_exp_config`` on ``config.json`` + ``load_unet`` on
  ``model.safetensors`` (the ``unet.``-prefixed checkpoint layout, strict); ``load_text_encoder`` on
  ``text_encoder_config.json`` + ``text_encoder.safetensors``. UNet cases call the UNet; the T5 case
  calls ``T5TextEncoder.embed_pair`` (uncond first, no attention mask).
* ``tta_audioldm_amphion_vae``: ``load_vae`` (diffusers' AutoencoderKL, Amphion keys mapped) on
  ``model.safetensors``; ``load_vocoder`` on ``vocoder_config.json`` (jik876 format) +
  ``vocoder.safetensors``. Encode cases use ``MelVAE.encode`` and ``Posterior.sample`` with the
  recorded noise.
* ``tta_audioldm_amphion_sampler``: ``AmphionAudioLDM.from_files`` on every file of the folder (the
  VAE file named by the config's ``autoencoder_path``), then ``AmphionAudioLDM.run`` with the
  recorded prompt ids, the unconditional ids the t5-base tokenizer gives for ``""`` padded to the
  prompt's length (``[</s>, <pad>, ...]``) and the recorded initial noise; ``wav_int16`` is the
  reference's int16 conversion of our audio.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from models.audioldm.configs import parse_exp_config
from models.audioldm.pipeline import AmphionAudioLDM, load_text_encoder, load_unet, load_vae, load_vocoder
from models.audioldm.sampler import reference_int16
from models.audioldm.text_encoder import EOS_ID, PAD_ID
from models.core.configs import read_json

from . import register
from .base import Adapter


def _no_grad(fn, *args):
    with torch.inference_mode():
        return fn(*args)


class UNetAdapter(Adapter):
    def load(self, folder: Path) -> SimpleNamespace:
        exp = parse_exp_config(read_json(folder / "config.json"))
        return SimpleNamespace(
            unet=load_unet(exp.unet, folder / "model.safetensors"),
            text=load_text_encoder(read_json(folder / "text_encoder_config.json"), folder / "text_encoder.safetensors"),
        )

    def run(self, component: SimpleNamespace, case_name: str, call: str, inputs: dict[str, Any],
            args: dict[str, Any], *, case: dict[str, Any]) -> dict[str, Any]:
        if "cond_ids" in inputs:
            uncond, cond = component.text.embed_pair(inputs["cond_ids"], inputs["uncond_ids"])
            return {"text_embeddings": torch.cat([uncond, cond])}
        if {"x", "timesteps", "context"} <= set(inputs):
            return {"eps": _no_grad(component.unet, inputs["x"], inputs["timesteps"], inputs["context"])}
        raise NotImplementedError(f"{case_name}: no UNet / T5 call takes inputs {sorted(inputs)}")


class VAEAdapter(Adapter):
    def load(self, folder: Path) -> SimpleNamespace:
        exp = parse_exp_config(read_json(folder / "config.json"))
        return SimpleNamespace(
            vae=load_vae(exp.vae, folder / "model.safetensors"),
            vocoder=load_vocoder(read_json(folder / "vocoder_config.json"), folder / "vocoder.safetensors"),
        )

    def run(self, component: SimpleNamespace, case_name: str, call: str, inputs: dict[str, Any],
            args: dict[str, Any], *, case: dict[str, Any]) -> dict[str, Any]:
        if case_name.startswith("vocoder"):
            return {"audio": _no_grad(component.vocoder, inputs["mel"])}
        if "z" in inputs:
            return {"mel": _no_grad(component.vae.decode, inputs["z"])}
        if "mel" in inputs and "noise" in inputs:
            posterior = _no_grad(component.vae.encode, inputs["mel"])
            return {"mean": posterior.mean, "logvar": posterior.logvar, "std": posterior.std,
                    "sample": posterior.sample(inputs["noise"])}
        raise NotImplementedError(f"{case_name}: no VAE / vocoder call takes inputs {sorted(inputs)}")


class SamplerAdapter(Adapter):
    def load(self, folder: Path) -> AmphionAudioLDM:
        raw = read_json(folder / "config.json")
        vae_file = parse_exp_config(raw).autoencoder_path or "autoencoder.safetensors"
        return AmphionAudioLDM.from_files(
            exp_config=raw,
            unet_weights=folder / "model.safetensors",
            vae_weights=folder / vae_file,
            vocoder_config=read_json(folder / "vocoder_config.json"),
            vocoder_weights=folder / "vocoder.safetensors",
            t5_config=read_json(folder / "text_encoder_config.json"),
            t5_weights=folder / "text_encoder.safetensors",
            note=f"parity fixture {folder.name}",
        )

    def run(self, component: AmphionAudioLDM, case_name: str, call: str, inputs: dict[str, Any],
            args: dict[str, Any], *, case: dict[str, Any]) -> dict[str, Any]:
        cond_ids = inputs["cond_ids"]
        uncond_ids = torch.full_like(cond_ids, PAD_ID)
        uncond_ids[:, 0] = EOS_ID  # "" -> [</s>], padded to the prompt's length
        out = component.run(cond_ids, uncond_ids, inputs["noise"], num_inference_steps=int(args["num_steps"]),
                            guidance_scale=float(args["guidance_scale"]))
        return {"latents": out.latents, "mel": out.mel, "audio": out.audio,
                "wav_int16": torch.from_numpy(reference_int16(out.audio))}


register("tta_audioldm_amphion_unet", UNetAdapter())
register("tta_audioldm_amphion_vae", VAEAdapter())
register("tta_audioldm_amphion_sampler", SamplerAdapter())
