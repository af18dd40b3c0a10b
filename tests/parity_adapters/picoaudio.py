"""Parity adapters for PicoAudio (fixtures ``tta_picoaudio_diffusion`` and ``tta_picoaudio_vae``).

Both build through the product code:

* diffusion: ``build_unet`` on the folder's ``config.json`` (PicoAudio's ``frequency.json`` shape)
  and ``model.safetensors`` (the ``diffusion.pt`` layout: ``unet.*`` + the unused ``class_emb``),
  ``make_scheduler`` on ``scheduler_config.json``. Onset cases run ``decode_timestamps`` (the
  reference's decoder); sampler cases run ``sample_latents`` with the recorded noise handed out in
  the reference's draw order (initial latents, then one per step) and the case's stand-in CLAP
  embedding; they also check that the case's onset string decodes to its onset input.
* vae: ``parse_vae_config`` / ``parse_vocoder`` on ``config.json`` / ``vocoder_config.json`` and
  ``build_audio_decoder`` on ``model.safetensors`` (the ``pytorch_model_vae.bin`` layout: LDM VAE
  keys mapped to diffusers', ``vocoder.*`` into the HiFi-GAN). ``wav_int16`` is the reference's
  ``(wav * 32768).astype("int16")`` of our float output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from models.core.checkpoints import load_state_dict_file
from models.core.configs import read_json
from models.picoaudio.configs import parse_vae_config, parse_vocoder
from models.picoaudio.decoder import AudioDecoder, build_audio_decoder
from models.picoaudio.diffusion import build_unet, make_scheduler, sample_latents
from models.picoaudio.timestamps import decode_timestamps

from . import register
from .base import Adapter


class PicoAudioDiffusionAdapter(Adapter):
    def load(self, folder: Path) -> dict[str, Any]:
        path = folder / "model.safetensors"
        unet = build_unet(read_json(folder / "config.json"), load_state_dict_file(path), source=str(path))
        return {"unet": unet, "scheduler_config": read_json(folder / "scheduler_config.json")}

    def run(self, component: dict[str, Any], case_name: str, call: str, inputs: dict[str, Any],
            args: dict[str, Any], *, case: dict[str, Any]) -> dict[str, Any]:
        unet = component["unet"]
        if case_name.startswith("onset_decode"):
            onset, event_str = decode_timestamps(inputs["onset_str"])
            return {"onset": torch.from_numpy(onset), "event_str": event_str}
        if case_name.startswith("unet"):
            with torch.inference_mode():
                out = unet(inputs["sample"], inputs["timestep"], encoder_hidden_states=inputs["encoder_hidden_states"],
                           encoder_attention_mask=inputs["encoder_attention_mask"]).sample
            return {"sample": out}
        if case_name.startswith("sampler"):
            decoded = torch.stack([torch.from_numpy(decode_timestamps(s)[0]) for s in inputs["onset_str"]])
            if not torch.equal(decoded, inputs["onset"]):
                raise AssertionError(f"{case_name}: decode_timestamps(onset_str) differs from the case's onset input")
            draws = iter([inputs["init_noise"], *inputs["step_noise"]])

            def draw(shape: tuple[int, ...]) -> torch.Tensor:
                noise = next(draws)
                assert tuple(noise.shape) == tuple(shape), f"noise {tuple(noise.shape)} drawn for {shape}"
                return noise

            latents = sample_latents(unet, make_scheduler(component["scheduler_config"]), inputs["onset"],
                                     inputs["event_info"], num_steps=int(args["num_steps"]),
                                     guidance_scale=float(args["guidance_scale"]), draw=draw)
            if next(draws, None) is not None:
                raise AssertionError(f"{case_name}: the sampler drew fewer noise tensors than the reference")
            return {"latents": latents}
        raise NotImplementedError(f"tta_picoaudio_diffusion: no adapter for case {case_name!r}")


class PicoAudioVAEAdapter(Adapter):
    def load(self, folder: Path) -> AudioDecoder:
        path = folder / "model.safetensors"
        return build_audio_decoder(parse_vae_config(read_json(folder / "config.json")),
                                   parse_vocoder(read_json(folder / "vocoder_config.json")),
                                   load_state_dict_file(path), source=str(path))

    def run(self, component: AudioDecoder, case_name: str, call: str, inputs: dict[str, Any],
            args: dict[str, Any], *, case: dict[str, Any]) -> dict[str, Any]:
        decoder = component
        if case_name.startswith("decode"):
            mel = decoder.decode_mel(inputs["latents"])
            wav = decoder.vocode(mel)
            wav_int16 = torch.from_numpy((wav.numpy() * 32768).astype("int16"))
            return {"mel": mel, "wav_float": wav, "wav_int16": wav_int16}
        if case_name == "encode":
            with torch.inference_mode():
                mean, logvar, latents = decoder.encode(inputs["mel"], inputs["noise"])
            return {"mean": mean, "logvar": logvar, "latents": latents}
        raise NotImplementedError(f"tta_picoaudio_vae: no adapter for case {case_name!r}")


register("tta_picoaudio_diffusion", PicoAudioDiffusionAdapter())
register("tta_picoaudio_vae", PicoAudioVAEAdapter())
