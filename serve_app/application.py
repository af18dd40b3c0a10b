"""The application builder named by config/serve*.yaml: `import_path: serve_app.application:build_app`.

`args` in the config file come here. Model deployments are bound once each and handed to the
ingress as DeploymentHandles.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from deployments.asr import DEPLOYMENT_NAME as ASR_NAME, WhisperASRDeployment
from deployments.codec import DualCodecDeployment, FACodecDeployment
from deployments.vevo import PART_DEPLOYMENTS as VEVO_PARTS, VEVO_PIPELINES, VevoDeployment, VevoSingDeployment
from deployments.maskgct import COMPONENT_DEPLOYMENTS as MASKGCT_COMPONENTS, MaskGCTDeployment
from deployments.vocoder import VocoderDeployment
from models import registry
from serve_app.ingress import AmphionIngress
from serve_app.settings import Settings


# Environment every replica of this application gets (mirrors `runtime_env` in config/serve*.yaml,
# for applications started from Python: tests and benchmarks).
REPLICA_ENV = {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0"}
# The ingress handles uploads in 64 KB chunks and decoded arrays of tens of MB, briefly: with
# glibc's default (dynamic) thresholds that memory stays in the heap after use and the replica's
# RSS only grows; these make large blocks come from mmap and go back to the OS when freed.
# Ingress only: model replicas reuse big tensors, where mmap per allocation would cost page faults.
INGRESS_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}


#: Component deployments by name. A pipeline lists the ones it calls after its own name in
#: ``registry.ModelInfo.deployments``; one shared by several pipelines (Whisper, w2v-bert) is bound once.
COMPONENT_DEPLOYMENTS = {**MASKGCT_COMPONENTS, ASR_NAME: WhisperASRDeployment}


class AppArgs(Settings):
    """Everything `args:` may hold: the ingress settings plus how model deployments load."""

    model_config = ConfigDict(extra="forbid")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="weights of the generative models and encoders: auto = float16 on GPU, float32 on "
                            "CPU (codecs and vocoders always run in float32)")
    torch_threads: Optional[int] = Field(None, ge=1, description="intra-op CPU threads per model replica")
    cache_dir: Optional[str] = Field(None, description="Hugging Face cache folder for pretrained weights")


def build_app(args: dict | None = None):
    return compose(AppArgs(**(args or {})))


def compose(parsed: AppArgs, ingress_replicas: int | None = None, vocoder_user_config: dict | None = None):
    """Bind every built model deployment and the ingress (MaskGCT: its component deployments too,
    handed to the MaskGCT pipeline deployment as handles). Replica counts and batching normally
    come from the config file; tests and benchmarks pass them here."""
    loading = dict(weights=parsed.weights, device=parsed.device, torch_threads=parsed.torch_threads,
                   cache_dir=parsed.cache_dir)
    bound_components: dict = {}

    def component(name: str):
        if name not in bound_components:
            if name in VEVO_PARTS:  # one class per family, deployed once per part
                deployment, part = VEVO_PARTS[name]
                bound_components[name] = deployment.options(name=name).bind(part, **loading, dtype=parsed.dtype)
            else:
                bound_components[name] = COMPONENT_DEPLOYMENTS[name].options(name=name).bind(**loading,
                                                                                            dtype=parsed.dtype)
        return bound_components[name]

    handles = {}
    for model in registry.built_models():
        if model.task == "vocoder":
            name = model.deployments[0]
            options = {"name": name}
            if vocoder_user_config is not None:
                options["user_config"] = vocoder_user_config
            handles[name] = VocoderDeployment.options(**options).bind(model.key, **loading)
        elif model.key == "maskgct":
            # The pipeline deployment (deployments[0]) gets its components' handles and composes them.
            components = {name: component(name) for name in model.deployments[1:]}
            name = model.deployments[0]
            handles[name] = MaskGCTDeployment.options(name=name).bind(components, **loading)
        elif model.key == "dualcodec":
            components = {name: component(name) for name in model.deployments[1:]}
            handles["DualCodec"] = DualCodecDeployment.options(name="DualCodec").bind(components, **loading)
        elif model.deployments[0] in VEVO_PIPELINES:
            name = model.deployments[0]
            components = {n: component(n) for n in model.deployments[1:]}
            handles[name] = VevoDeployment.options(name=name).bind(VEVO_PIPELINES[name], components,
                                                                   weights=parsed.weights)
        elif model.key == "vevosing":
            components = {n: component(n) for n in model.deployments[1:]}
            handles["VevoSing"] = VevoSingDeployment.options(name="VevoSing").bind(components, weights=parsed.weights)
        elif model.key == "facodec":
            handles["FACodec"] = FACodecDeployment.options(name="FACodec").bind(**loading)
    settings = parsed.model_dump(include=set(Settings.model_fields) - {"api_keys"})
    options = {"ray_actor_options": {"runtime_env": {"env_vars": INGRESS_ENV}}}
    if ingress_replicas is not None:
        options["num_replicas"] = ingress_replicas
    ingress = AmphionIngress.options(**options)
    return ingress.bind(handles, settings)
