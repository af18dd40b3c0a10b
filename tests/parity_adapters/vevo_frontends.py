"""Parity adapters for Vevo's and Vevo1.5's front ends, tokenizers and vocoder.

Folders: vevo_mel, vevo_vocoder, vevo_content_tokenizer, vevo_contentstyle_tokenizer, vevosing_tokenizers.
Each component is built through the product code: the config parsers of ``models.vevo.configs`` /
``models.vevosing.tokenizers`` on the folder's ``config.json`` and the strict ``build_*`` loaders on its
weight file(s). Statistics that the fixtures give as case inputs (HuBERT / Whisper mean and std) are
set on the product modules per case.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from models.core.checkpoints import load_state_dict_file
from models.core.configs import read_config
from models.vevo.configs import (
    parse_content_tokenizer_config,
    parse_contentstyle_tokenizer_config,
    parse_mel_config,
    parse_vocoder_config,
)
from models.vevo.content_tokenizer import VevoRepCodec, build_content_tokenizer, read_content_tokenizer_state
from models.vevo.contentstyle_tokenizer import VevoContentStyleTokenizer, build_contentstyle_tokenizer
from models.vevo.mel import VevoMel
from models.vevo.vocoder import VevoVocoder, build_vocoder
from models.vevosing.chromagram import Chromagram, parse_chromagram_config
from models.vevosing.tokenizers import CocoTokenizer, build_coco_tokenizer, parse_coco_config
from models.vevosing.whisper_features import postprocess_whisper_features

from . import register
from .base import Adapter


class MelAdapter(Adapter):
    def load(self, folder: Path) -> VevoMel:
        return VevoMel(parse_mel_config(read_config(folder / "config.json")))

    def run(self, component: VevoMel, case_name: str, call: str, inputs: dict[str, Any], args: dict[str, Any],
            *, case: dict[str, Any]) -> dict[str, Any]:
        if case_name == "mel_filterbank":
            return {"mel_basis": torch.from_numpy(component.filterbank())}
        assert args["mel_mean"] == component.config.mel_mean and args["mel_var"] == component.config.mel_var
        raw = component.raw(inputs["wav"])
        return {"raw_logmel": raw, "normalised_mel": component(inputs["wav"])}


class VocoderAdapter(Adapter):
    def load(self, folder: Path) -> VevoVocoder:
        config = parse_vocoder_config(read_config(folder / "config.json"))
        path = folder / "model.safetensors"
        return build_vocoder(config, load_state_dict_file(path), source=str(path))

    def run(self, component: VevoVocoder, case_name: str, call: str, inputs: dict[str, Any],
            args: dict[str, Any], *, case: dict[str, Any]) -> dict[str, Any]:
        mel = inputs["mel"]  # [B, n_mels, T], as the reference's forward takes it
        with torch.inference_mode():
            backbone = component.backbone(mel)
        return {"wav": component.vocode(mel.transpose(1, 2)).unsqueeze(1), "backbone_out": backbone}


class ContentTokenizerAdapter(Adapter):
    def load(self, folder: Path) -> VevoRepCodec:
        config = parse_content_tokenizer_config(read_config(folder / "config.json"))
        path = folder / "model.safetensors"
        return build_content_tokenizer(config, read_content_tokenizer_state(path), source=str(path))

    def run(self, component: VevoRepCodec, case_name: str, call: str, inputs: dict[str, Any],
            args: dict[str, Any], *, case: dict[str, Any]) -> dict[str, Any]:
        lengths = inputs.get("feat_lengths")
        if lengths is None and "feat_lengths" in args:
            lengths = torch.tensor(args["feat_lengths"])
        tokens = component.tokenize(inputs["feats"], lengths, n_gram=int(args["duration_reduction_n_gram"]))
        with torch.inference_mode():
            _, z = component.quantize(inputs["feats"])
        return {"codes": tokens.codes, "codes_mask": tokens.codes_mask, "reduced_codes": tokens.reduced,
                "reduced_mask": tokens.reduced_mask, "z": z}


class ContentStyleTokenizerAdapter(Adapter):
    def load(self, folder: Path) -> VevoContentStyleTokenizer:
        config = parse_contentstyle_tokenizer_config(read_config(folder / "config.json"))
        path = folder / "model.safetensors"
        return build_contentstyle_tokenizer(config, load_state_dict_file(path), source=str(path))

    def run(self, component: VevoContentStyleTokenizer, case_name: str, call: str, inputs: dict[str, Any],
            args: dict[str, Any], *, case: dict[str, Any]) -> dict[str, Any]:
        component.mean.copy_(inputs["feat_mean"])
        component.std.copy_(inputs["feat_std"])
        codes, quantized = component.tokenize(inputs["feats"])
        return {"codes": codes, "quantized": quantized}


# The fixture's weight file for each Coco tokenizer (official: tokenizer/<name>/model.safetensors).
_COCO_FILES = {"model.coco_content_style": "model_contentstyle.safetensors", "model.coco_style": "model_prosody.safetensors"}


class VevoSingTokenizersAdapter(Adapter):
    def load(self, folder: Path) -> dict[str, Any]:
        raw = read_config(folder / "config.json")
        parts: dict[str, Any] = {"preprocess": Chromagram(parse_chromagram_config(raw))}
        for key, file_name in _COCO_FILES.items():
            config = parse_coco_config(raw["model"][key.split(".")[1]])
            path = folder / file_name
            parts[key] = build_coco_tokenizer(config, load_state_dict_file(path), source=str(path))
        return parts

    def run(self, component: dict[str, Any], case_name: str, call: str, inputs: dict[str, Any],
            args: dict[str, Any], *, case: dict[str, Any]) -> dict[str, Any]:
        part = component[case["config_key"]]
        expected_file = _COCO_FILES.get(case["config_key"])
        assert case.get("weights") == expected_file, f"{case_name}: weights {case.get('weights')!r}"
        if isinstance(part, Chromagram):
            chroma, details = part.compute_with_details(inputs["wav"].numpy(), frame_len=int(args["frame_len"]))
            return {"chromagram": torch.from_numpy(chroma), "chroma_stft_raw": torch.from_numpy(details.chroma_stft),
                    "tuning": torch.tensor([details.tuning], dtype=torch.float32),
                    "chroma_filterbank": torch.from_numpy(details.filterbank)}
        coco: CocoTokenizer = part
        out: dict[str, Any] = {}
        if "whisper_encoder_out" in inputs:
            feats = postprocess_whisper_features(
                inputs["whisper_encoder_out"], torch.tensor([int(args["frame_len"])]),
                inputs["whisper_mean"], inputs["whisper_std"],
            )
            out["whisper_feats"] = feats
        else:
            feats = inputs.get("whisper_feats")
        codes, quantized = coco.tokenize(inputs["chromagram"], feats)
        out.update(codes=codes, quantized=quantized)
        return out


register("vevo_mel", MelAdapter())
register("vevo_vocoder", VocoderAdapter())
register("vevo_content_tokenizer", ContentTokenizerAdapter())
register("vevo_contentstyle_tokenizer", ContentStyleTokenizerAdapter())
register("vevosing_tokenizers", VevoSingTokenizersAdapter())
