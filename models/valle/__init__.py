"""DualCodec-VALL-E (text -> DualCodec 12hz_v1 codes): text front end, AR, NAR, pipeline.
See ``models/valle/README.md``."""

from models.valle.ar import ARSampling, ValleAR, build_valle_ar
from models.valle.configs import ValleARConfig, ValleConfigError, ValleNARConfig, read_ar_config, read_nar_config
from models.valle.nar import ValleNAR, build_valle_nar
from models.valle.pipeline import ValleInputError, ValleResult, ValleTTS
from models.valle.text import WhisperTextTokenizer, load_text_tokenizer, normalize_en, plan_text

__all__ = ["ARSampling", "ValleAR", "ValleARConfig", "ValleConfigError", "ValleInputError", "ValleNAR",
           "ValleNARConfig", "ValleResult", "ValleTTS", "WhisperTextTokenizer", "build_valle_ar", "build_valle_nar",
           "load_text_tokenizer", "normalize_en", "plan_text", "read_ar_config", "read_nar_config"]
