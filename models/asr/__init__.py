"""Speech recognition used by the TTS pipelines for prompt transcripts (Whisper via transformers)."""
