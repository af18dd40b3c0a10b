"""Parity adapters for the vocoder fixtures (vocoder_*).

The component is built exactly as the service builds it: ``parse_config`` on the folder's
``config.json`` (NVIDIA flat format or Amphion experiment format), ``load_state_dict_file`` for the
weights (wrapper / prefix handling), then ``build_vocoder`` (strict load with weight-norm key
mapping, weight norm folded, eval mode). Cases then go through the same entry points the service
uses where the fixture's call allows it:

* ``mel`` only: ``Vocoder.vocode`` on the batch items (equal lengths, so no padding is involved);
* ``mel`` + ``f0`` (NSF): the generator itself, because the fixture checks the reference's F0-length
  cropping, which ``vocode`` deliberately replaces by aligning F0 to the mel;
* ``f0`` only (NSF source module): the generator's ``source`` with the recorded random draws;
* ``waveform``: ``Vocoder.analyse`` for the mel, then ``vocode`` on our own mel (the fixtures state
  that the whole chain must match, not only the generator on the reference mel).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.core.checkpoints import load_state_dict_file
from models.core.configs import read_json
from models.vocoders import Vocoder, build_vocoder, parse_config

from . import register
from .base import Adapter


class VocoderAdapter(Adapter):
    def __init__(self, name: str, *, batched_mel: bool) -> None:
        self.name = name
        # Amphion's extract_mel_features squeezes the batch ([n_mels, T]); NVIDIA's returns [B, n_mels, T].
        self.batched_mel = batched_mel

    def load(self, folder: Path) -> Vocoder:
        config = parse_config(self.name, read_json(folder / "config.json"))
        state_dict = load_state_dict_file(folder / "model.safetensors")
        return build_vocoder(self.name, config=config, state_dict=state_dict, note=f"parity fixture {folder.name}")

    def run(
        self,
        component: Vocoder,
        case_name: str,
        call: str,
        inputs: dict[str, Any],
        args: dict[str, Any],
        *,
        case: dict[str, Any],
    ) -> dict[str, Any]:
        voc = component
        if "waveform" in inputs:
            wave = inputs["waveform"]
            if wave.dim() != 2 or wave.shape[0] != 1:
                raise ValueError(f"{case_name}: expected a [1, L] waveform")
            mel = voc.analyse(wave[0].numpy())
            audio = voc.vocode([mel])[0]
            mel_t = torch.from_numpy(mel)
            return {
                "mel": mel_t.unsqueeze(0) if self.batched_mel else mel_t,
                "audio": torch.from_numpy(audio).view(1, 1, -1),
            }
        if "mel" in inputs and "f0" in inputs:
            with torch.inference_mode():
                audio = voc.generator(inputs["mel"], inputs["f0"])
            return {"audio": audio.clone()}
        if "f0" in inputs:
            with torch.inference_mode():
                har = voc.generator.source(inputs["f0"], inputs.get("sine_rand_ini"), inputs.get("sine_noise"))
            return {"har_source": har.clone()}
        if "mel" in inputs:
            mels = [m.numpy() for m in inputs["mel"]]
            audio = np.stack(voc.vocode(mels))
            return {"audio": torch.from_numpy(audio).unsqueeze(1)}
        raise NotImplementedError(f"{case_name}: no vocoder call takes inputs {sorted(inputs)}")


register("vocoder_hifigan_amphion", VocoderAdapter("hifigan", batched_mel=False))
register("vocoder_bigvgan_nvidia", VocoderAdapter("bigvgan", batched_mel=True))
register("vocoder_bigvgan_amphion", VocoderAdapter("bigvgan", batched_mel=False))
register("vocoder_nsfhifigan_amphion", VocoderAdapter("nsf_hifigan", batched_mel=False))
