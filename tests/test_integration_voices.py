"""Saved voices through the running application (2 ingress replicas, tiny weights): a voice saved by
one request is read back by many (whichever replica answers), speaks on the TTS and VC routes by
`voice_id`, and a second TTS with it skips the prompt encoders (Server-Timing `prompt;desc="hit"`)
with the same audio for the same seed. Bad input: unknown and other keys' voices 404, both a voice
and an upload 422, undecodable or oversized audio 4xx."""

from __future__ import annotations

import io
import re

import httpx
import numpy as np
import pytest
import soundfile as sf

from tests.conftest import G2P_DATA

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not G2P_DATA.is_dir(), reason=f"G2P reference data not found at {G2P_DATA}")]

SR = 24000
TEXT = "A reference sentence spoken here."


def voice_wav(seconds: float = 2.5, seed: int = 11) -> bytes:
    """A voiced-sounding clip no other test sends (its own noise), so its prompt is new to the cache."""
    t = np.arange(int(seconds * SR)) / SR
    f0 = 140 + 25 * np.sin(2 * np.pi * 0.7 * t)
    x = 0.3 * np.sin(2 * np.pi * np.cumsum(f0) / SR) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    x += 0.01 * np.random.default_rng(seed).standard_normal(t.size)
    buf = io.BytesIO()
    sf.write(buf, x.astype(np.float32), SR, format="WAV")
    return buf.getvalue()


def prompt_timing(response) -> tuple[str, float]:
    """(desc, dur ms) of the response's Server-Timing `prompt` entry."""
    found = re.search(r'prompt;desc="(\w+)";dur=([\d.]+)', response.headers.get("server-timing", ""))
    assert found, response.headers.get("server-timing")
    return found.group(1), float(found.group(2))


def stage_names(response) -> set[str]:
    return {entry.split(";")[0].strip() for entry in response.headers["server-timing"].split(",")}


def test_saved_voice_read_back_and_spoken_with_the_prompt_cache(served):
    owner = served.fresh_key()
    headers = {"X-API-Key": owner}
    with httpx.Client(base_url=served.base_url, timeout=300) as client:
        created = client.post("/api/voices", headers=headers, data={"text": TEXT, "name": "narrator"},
                              files={"audio": ("narrator.wav", voice_wav())})
        assert created.status_code == 201, created.text
        voice = created.json()
        assert voice["name"] == "narrator" and voice["text"] == TEXT and abs(voice["duration"] - 2.5) < 0.01
        assert "x-task-id" not in created.headers

        # Read back many times: 2 ingress replicas, one folder, every answer the same.
        for _ in range(8):
            got = client.get(f"/api/voices/{voice['voice_id']}", headers=headers)
            assert got.status_code == 200 and got.json() == voice
        assert voice["voice_id"] in [v["voice_id"] for v in client.get("/api/voices", headers=headers).json()["voices"]]

        # TTS twice with the voice: the second finds its prompt encodings kept in the entry.
        data = {"text": "Hello world, this is a test.", "voice_id": voice["voice_id"], "language": "en",
                "target_len": "1.5", "seed": "5", "n_timesteps": "4"}
        first = client.post("/api/tts/maskgct", headers=headers, data=data)
        second = client.post("/api/tts/maskgct", headers=headers, data=data)
        assert first.status_code == second.status_code == 200, first.text
        assert prompt_timing(first)[0] == "miss" and prompt_timing(first)[1] > 0
        assert prompt_timing(second) == ("hit", 0.0)            # no prompt encoder ran
        assert first.content == second.content                  # same seed, same audio, cache or not
        out, sr = sf.read(io.BytesIO(second.content))
        assert sr == SR and len(out) == int(1.5 * SR)

        # The same voice on a conversion route.
        source = voice_wav(1.5, seed=12)
        converted = client.post("/api/vc/vevo-timbre", headers=headers,
                                data={"voice_id": voice["voice_id"], "flow_matching_steps": "2"},
                                files={"source_audio": ("source.wav", source)})
        assert converted.status_code == 200, converted.text
        assert "prompt" in stage_names(converted)

        assert client.delete(f"/api/voices/{voice['voice_id']}", headers=headers).status_code == 204
        gone = client.post("/api/tts/maskgct", headers=headers, data=data)
        assert gone.status_code == 404 and voice["voice_id"] in gone.json()["detail"]


def test_voice_errors_on_the_running_app(served):
    owner, other = served.fresh_key(), served.fresh_key()
    with httpx.Client(base_url=served.base_url, timeout=120) as client:
        voice_id = client.post("/api/voices", headers={"X-API-Key": owner},
                               files={"audio": ("v.wav", voice_wav(1.0, seed=13))}).json()["voice_id"]
        tts = {"text": "Hello.", "reference_text": TEXT, "language": "en", "target_len": "1.0"}

        theirs = client.post("/api/tts/maskgct", headers={"X-API-Key": other}, data={**tts, "voice_id": voice_id})
        unknown = client.post("/api/tts/maskgct", headers={"X-API-Key": other},
                              data={**tts, "voice_id": "voice_" + "Q" * 16})
        assert theirs.status_code == unknown.status_code == 404
        assert client.get(f"/api/voices/{voice_id}", headers={"X-API-Key": other}).status_code == 404

        both = client.post("/api/tts/maskgct", headers={"X-API-Key": owner}, data={**tts, "voice_id": voice_id},
                           files={"reference_audio": ("r.wav", voice_wav(1.0))})
        assert both.status_code == 422 and "not both" in both.json()["detail"][0]["msg"]

        not_audio = client.post("/api/voices", headers={"X-API-Key": other},
                                files={"audio": ("v.wav", b"RIFF....WAVEfmt " + b"\x00" * 40)})
        assert not_audio.status_code == 400 and not_audio.json()["detail"].startswith("audio:")
        text_file = client.post("/api/voices", headers={"X-API-Key": other}, files={"audio": ("v.txt", b"hello")})
        assert text_file.status_code == 415
        # The suite's reference limit is 1 MB: a 1.2 MB voice is refused naming the field.
        big = client.post("/api/voices", headers={"X-API-Key": other},
                          files={"audio": ("big.wav", voice_wav(25.0, seed=14))})
        assert big.status_code == 413 and big.json()["detail"].startswith("audio:")
        assert client.get("/api/voices", headers={"X-API-Key": other}).json()["voices"] == []
