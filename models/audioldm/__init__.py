"""Text to audio with latent diffusion (``/api/tta/audioldm``).

Two implementations live here:

* Amphion's own MIT model (``amphion/text_to_audio``: T5-base text encoder, LDM UNet, mel VAE,
  jik876 HiFi-GAN), parity-tested: :class:`models.audioldm.pipeline.AmphionAudioLDM`
  (``configs``, ``unet``, ``vae``, ``vocoder``, ``text_encoder``, ``sampler``,
  ``official``, ``pipeline``);
* diffusers' AudioLDM pipelines (``cvssp/audioldm-*``): ``models.audioldm.diffusers_pipeline``.

Import the submodules directly; this package keeps no re-exports so that importing one side never
loads the other. Files, reference notes and how we differ: ``models/audioldm/README.md``.
"""
