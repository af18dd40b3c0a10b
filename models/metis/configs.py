"""Configurations of Metis' stage-1 (semantic) model.

Amphion's Metis configs (``models/tts/metis/config/{tts,vc,se,tse,base,l2s}.json``) keep the model
under ``model.t2s_model``, with MaskGCT's T2S keys plus ``cond_dim`` (the adapter's input width:
1024 = w2v-bert-2.0 features, 768 = the lip encoder of L2S), ``use_phone_cond`` and, for the LoRA
releases, ``use_lora`` / ``lora_r`` / ``lora_alpha``. The *fine-tuning type* (``ft_type``) is not
in the file: the reference passes it to ``build_metis_stage1`` per task and it decides the adapter:

=========  =======================================================================
ft_type    adapter
=========  =======================================================================
``tts``    none (the model is MaskGCT's T2S; weights ``amphion/MaskGCT`` t2s_model)
``base``   none (``metis_base/model.safetensors``, the LoRA releases' base)
``vc`` ``se`` ``tse`` ``omni``  gated ``SimpleAdapter`` (``in_linear``, ``out_linear``, ``gate_scale``)
``l2s``    plain ``Sequential(Linear, SiLU, Linear)``, no gate (built for completeness; not served)
=========  =======================================================================
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from models.maskgct.generation_configs import OFFICIAL_T2S, TINY_SEMANTIC_VOCAB, T2SConfig, read_config_file

__all__ = [
    "ADAPTER_KINDS",
    "FT_TYPES",
    "MetisConfigError",
    "MetisStage1Config",
    "adapter_kind",
    "official_stage1_config",
    "parse_stage1_config",
    "read_stage1_config",
    "tiny_stage1_config",
]

FT_TYPES = ("tts", "base", "vc", "se", "tse", "omni", "l2s")
#: ft_type -> adapter built on top of the stage-1 model (None: no adapter).
ADAPTER_KINDS: dict[str, str | None] = {
    "tts": None, "base": None, "vc": "gated", "se": "gated", "tse": "gated", "omni": "gated", "l2s": "plain",
}


class MetisConfigError(ValueError):
    """A configuration that does not describe a Metis stage-1 model."""


def adapter_kind(ft_type: str) -> str | None:
    if ft_type not in ADAPTER_KINDS:
        raise MetisConfigError(f"unknown Metis ft_type {ft_type!r}; expected one of {', '.join(FT_TYPES)}")
    return ADAPTER_KINDS[ft_type]


@dataclass(frozen=True)
class MetisStage1Config:
    hidden_size: int
    num_layers: int
    num_heads: int
    cond_codebook_size: int            # semantic vocabulary (8192 officially)
    cond_dim: int = 1024               # adapter input width (w2v-bert features)
    use_phone_cond: bool = True        # phone_emb + diff_estimator.cond_mlp present
    cfg_scale: float = 0.15            # training only
    use_lora: bool = False
    lora_r: int | None = None
    lora_alpha: float | None = None

    def __post_init__(self) -> None:
        self.t2s_config()  # size checks of the shared backbone
        if self.cond_dim < 1:
            raise MetisConfigError(f"t2s_model: cond_dim must be >= 1, got {self.cond_dim}")
        if self.use_lora:
            if not self.lora_r or self.lora_r < 1 or self.lora_alpha is None:
                raise MetisConfigError("t2s_model: use_lora needs lora_r >= 1 and lora_alpha")

    @property
    def lora_scaling(self) -> float:
        if not self.use_lora:
            raise MetisConfigError("this configuration has no LoRA (use_lora is false)")
        return float(self.lora_alpha) / float(self.lora_r)

    def t2s_config(self) -> T2SConfig:
        """The MaskGCT T2S configuration of the shared model (backbone, embeddings, logit head)."""
        return T2SConfig(hidden_size=self.hidden_size, num_layers=self.num_layers, num_heads=self.num_heads,
                         cond_codebook_size=self.cond_codebook_size, cfg_scale=self.cfg_scale, cond_dim=self.cond_dim)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _section(obj: dict[str, Any]) -> dict[str, Any]:
    if "hidden_size" in obj:
        return obj
    node: Any = obj
    for key in ("model", "t2s_model"):
        if isinstance(node, dict) and key in node:
            node = node[key]
    if isinstance(node, dict) and "hidden_size" in node:
        return node
    raise MetisConfigError(f"no model.t2s_model section found (top-level keys: {sorted(obj)[:10]}); expected a "
                           f"Metis config file, its 'model' object or the t2s_model section itself")


def parse_stage1_config(obj: dict[str, Any]) -> MetisStage1Config:
    """A Metis config (whole file, its ``model`` object, or the ``t2s_model`` section)."""
    sec = _section(obj)
    try:
        return MetisStage1Config(
            hidden_size=int(sec["hidden_size"]), num_layers=int(sec["num_layers"]), num_heads=int(sec["num_heads"]),
            cond_codebook_size=int(sec["cond_codebook_size"]), cond_dim=int(sec.get("cond_dim", 1024)),
            use_phone_cond=bool(sec.get("use_phone_cond", True)), cfg_scale=float(sec.get("cfg_scale", 0.15)),
            use_lora=bool(sec.get("use_lora", False)),
            lora_r=None if sec.get("lora_r") is None else int(sec["lora_r"]),
            lora_alpha=None if sec.get("lora_alpha") is None else float(sec["lora_alpha"]),
        )
    except KeyError as exc:
        raise MetisConfigError(f"t2s_model: missing key {exc.args[0]!r}") from None
    except ValueError as exc:  # GenerationConfigError is a ValueError too
        raise MetisConfigError(f"t2s_model: {exc}") from None


def read_stage1_config(path: str | Path) -> MetisStage1Config:
    return parse_stage1_config(read_config_file(path))


# Official values (Amphion's config/*.json at the pinned commit): the MaskGCT T2S sizes, cond_dim 1024,
# use_phone_cond true for tts/omni and false for the fine-tuned tasks; LoRA r 32 / alpha 64 (SE, TSE),
# r 16 / alpha 32 (VC).
_OFFICIAL_BASE = MetisStage1Config(
    hidden_size=OFFICIAL_T2S.hidden_size, num_layers=OFFICIAL_T2S.num_layers, num_heads=OFFICIAL_T2S.num_heads,
    cond_codebook_size=OFFICIAL_T2S.cond_codebook_size, cond_dim=1024, use_phone_cond=False,
)
_OFFICIAL_LORA = {"vc": (16, 32.0), "se": (32, 64.0), "tse": (32, 64.0)}


def official_stage1_config(task: str, *, lora: bool = True) -> MetisStage1Config:
    """The official stage-1 configuration for ``task`` (``tts``, ``vc``, ``se``, ``tse``, ``omni``,
    ``base``, ``l2s``); ``lora`` (vc/se/tse): the release's LoRA rank and alpha."""
    adapter_kind(task)
    if task in ("tts", "omni"):
        return replace(_OFFICIAL_BASE, use_phone_cond=True)
    if task == "l2s":
        return replace(_OFFICIAL_BASE, cond_dim=768)
    if task in _OFFICIAL_LORA and lora:
        r, alpha = _OFFICIAL_LORA[task]
        return replace(_OFFICIAL_BASE, use_lora=True, lora_r=r, lora_alpha=alpha)
    return _OFFICIAL_BASE


TINY_COND_DIM = 32         # = the tiny w2v-bert feature width


def tiny_stage1_config(task: str, *, lora: bool = True) -> MetisStage1Config:
    """Small sizes with the interfaces of the tiny MaskGCT parts (their semantic vocabulary, 32-d features)."""
    official = official_stage1_config(task, lora=lora)
    return replace(official, hidden_size=32, num_layers=2, num_heads=2, cond_codebook_size=TINY_SEMANTIC_VOCAB,
                   cond_dim=TINY_COND_DIM if task != "l2s" else 24,
                   lora_r=4 if official.use_lora else None, lora_alpha=8.0 if official.use_lora else None)
