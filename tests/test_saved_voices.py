"""Saved voices without Ray (serve_app/voices.py, serve_app/routes/voices.py): the store on disk
(owned per key, atomic, quotas, shared by app instances over one folder as replicas share it), the
routes' answers to bad input, and `voice_id` standing in for a reference upload on model routes
(fake entries record what the ingress sends them)."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from models.audio.wav import encode_wav
from models.core.prompt_cache import prompt_key
from models.voices import VOICE_DATA_ENV
from serve_app.audio_io import decode_audio
from serve_app.errors import APIError
from serve_app.voices import VOICE_ID_RULE, VoiceStore
from tests.serving_fakes import KEYS, make_app

VOICE_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "default_voice"
SR = 24000


def wav_bytes(seconds: float = 1.0, f0: float = 180.0, sample_rate: int = SR) -> bytes:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    buf = io.BytesIO()
    sf.write(buf, (0.2 * np.sin(2 * np.pi * f0 * t)).astype(np.float32), sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def key(i: int = 0) -> dict:
    return {"X-API-Key": KEYS[i]}


def create(client, audio: bytes, i: int = 0, **fields):
    return client.post("/api/voices", files={"audio": ("alice.wav", audio, "audio/wav")}, data=fields, headers=key(i))


class FakeEntry:
    """An entry deployment that records each payload, answers a short tone and reports its prompt
    cache as the real entries do: a miss the first time a prompt key is seen, a hit after."""

    def __init__(self, sample_rate: int = SR):
        self.sample_rate = sample_rate
        self.payloads: list[dict] = []
        self.seen: set[str] = set()

    async def describe(self):
        return {"sample_rate": self.sample_rate, "weights": "tiny"}

    async def info(self, model=None):
        return {"status": "ready", "running": True, "weights": "tiny", "detail": "fake"}

    def __getattr__(self, method):
        async def answer(payload):
            self.payloads.append(payload)
            report = None
            if payload.get("prompt_key"):
                hit = payload["prompt_key"] in self.seen
                self.seen.add(payload["prompt_key"])
                report = {"hits": ["tokens"] if hit else [], "misses": [] if hit else ["tokens"],
                          "seconds": 0.0 if hit else 0.05}
            wave = np.zeros(self.sample_rate // 10, np.float32)
            result = {"wav": encode_wav(wave, self.sample_rate, payload.get("subtype", "PCM_16")),
                      "sample_rate": self.sample_rate, "duration": 0.1, "weights": "tiny", "compute_s": 0.01,
                      "singer": "fake"}
            return result if report is None else {**result, "prompt": report}
        return answer


@pytest.fixture
def app_and_entries(tmp_path, monkeypatch):
    monkeypatch.setenv(VOICE_DATA_ENV, str(VOICE_DATA))
    entries = {"Vevo": FakeEntry(), "Noro": FakeEntry(16000), "MaskGCT": FakeEntry(), "Metis": FakeEntry()}
    app, _ = make_app(services=entries, storage_dir=str(tmp_path), voice_max_count=3, voice_max_mb=0.25)
    return app, entries


@pytest.fixture
def client(app_and_entries):
    return TestClient(app_and_entries[0])


# --- the store through its routes ------------------------------------------------------------------


def test_create_list_get_delete(client, tmp_path):
    r = create(client, wav_bytes(1.5), text="Hello there.", name="Alice")
    assert r.status_code == 201, r.text
    voice = r.json()
    assert VOICE_ID_RULE.match(voice["voice_id"]) and voice["name"] == "Alice" and voice["text"] == "Hello there."
    assert voice["duration"] == 1.5 and "X-Task-ID" not in r.headers     # no model ran: no task
    unnamed = create(client, wav_bytes(1.0)).json()
    assert unnamed["name"] == "alice" and unnamed["text"] is None          # the file's name

    listed = client.get("/api/voices", headers=key()).json()
    assert [v["voice_id"] for v in listed["voices"]] == [unnamed["voice_id"], voice["voice_id"]]  # newest first
    assert listed["quota"]["count"] == 2 and listed["quota"]["max_count"] == 3
    assert listed["builtin"][0]["voice_id"] == "default" and listed["builtin"][0]["text"]
    assert client.get(f"/api/voices/{voice['voice_id']}", headers=key()).json() == voice

    # On disk: under the key's digest id, never the key; the upload's bytes as sent, and the meta.
    folder = next(tmp_path.glob(f"voices/*/{voice['voice_id']}"))
    assert KEYS[0] not in str(folder)
    meta = json.loads((folder / "meta.json").read_text())
    assert (folder / "audio").read_bytes() == wav_bytes(1.5) and len(meta["sha256"]) == 64

    assert client.delete(f"/api/voices/{voice['voice_id']}", headers=key()).status_code == 204
    assert client.get(f"/api/voices/{voice['voice_id']}", headers=key()).status_code == 404
    assert not folder.exists()


def test_another_keys_voice_is_not_found_like_an_unknown_one(client):
    voice_id = create(client, wav_bytes()).json()["voice_id"]
    unknown = "voice_" + "A" * 16
    theirs = client.get(f"/api/voices/{voice_id}", headers=key(1))
    nobody = client.get(f"/api/voices/{unknown}", headers=key(1))
    assert theirs.status_code == nobody.status_code == 404
    assert theirs.json()["detail"].replace(voice_id, "ID") == nobody.json()["detail"].replace(unknown, "ID")
    assert client.delete(f"/api/voices/{voice_id}", headers=key(1)).status_code == 404
    assert client.get(f"/api/voices/{voice_id}", headers=key()).status_code == 200   # still there
    assert client.get("/api/voices", headers=key(1)).json()["voices"] == []
    for trick in ("..%2F..%2Fetc%2Fpasswd", ".lock", "voice_..%2F..%2Fx"):
        r = client.get(f"/api/voices/{trick}", headers=key())
        assert r.status_code == 404 and "/" not in r.json()["detail"].split("(")[0]
    assert client.delete("/api/voices/default", headers=key()).status_code == 403


def test_quotas_refuse_with_the_reason(client):
    for _ in range(3):
        assert create(client, wav_bytes(0.6)).status_code == 201
    over = create(client, wav_bytes(0.6))
    assert over.status_code == 409 and "3 saved voices" in over.json()["detail"]
    other = create(client, wav_bytes(0.6), i=1)                 # quotas are per key
    assert other.status_code == 201
    big = create(client, wav_bytes(5.0), i=1)                   # 240 KB + 29 KB > 0.25 MB
    assert big.status_code == 413 and "voice storage quota" in big.json()["detail"]
    first = client.get("/api/voices", headers=key()).json()["voices"][0]["voice_id"]
    client.delete(f"/api/voices/{first}", headers=key())
    assert create(client, wav_bytes(0.6)).status_code == 201     # room again


def test_bad_audio_is_refused(client):
    assert create(client, b"this is not audio at all, just text").status_code == 415
    truncated = wav_bytes()[:60]
    r = create(client, truncated)
    assert r.status_code == 400 and r.json()["detail"].startswith("audio:")
    short = create(client, wav_bytes(0.2))
    assert short.status_code == 400 and "at least 0.5 s" in short.json()["detail"]
    oversized = create(client, wav_bytes(12.0))            # over make_app's 0.5 MB reference limit
    assert oversized.status_code == 413 and "audio" in oversized.json()["detail"]
    missing = client.post("/api/voices", data={"text": "hi"}, headers=key())
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "audio"]
    assert client.get("/api/voices", headers=key()).json()["voices"] == []   # nothing half-made


def test_the_gate_gives_voices_the_reference_body_limit_and_no_task(app_and_entries):
    app, _ = app_and_entries
    gate = app.state.gate
    assert gate.body_limits["/api/voices"] == app.state.settings.reference_bytes() + 2 * 1024 * 1024
    assert "/api/voices" not in gate.task_routes and "/api/tts/vevo" in gate.task_routes


# --- persistence and several processes ------------------------------------------------------------


def test_voices_survive_a_restart(tmp_path, monkeypatch):
    """Two application instances over one storage folder: what one saved, the other (a restarted
    replica, or a second one) lists, reads, uses and deletes."""
    monkeypatch.setenv(VOICE_DATA_ENV, str(VOICE_DATA))
    first_app, _ = make_app(storage_dir=str(tmp_path))
    voice = create(TestClient(first_app), wav_bytes(1.0), text="Kept.").json()
    del first_app
    entry = FakeEntry()
    second, _ = make_app(services={"Vevo": entry}, storage_dir=str(tmp_path))
    client = TestClient(second)
    assert client.get(f"/api/voices/{voice['voice_id']}", headers=key()).json() == voice
    r = client.post("/api/tts/vevo", data={"text": "Hi.", "voice_id": voice["voice_id"]}, headers=key())
    assert r.status_code == 200 and entry.payloads[-1]["reference_text"] == "Kept."
    assert client.delete(f"/api/voices/{voice['voice_id']}", headers=key()).status_code == 204


def test_concurrent_creates_never_overshoot_the_count(tmp_path):
    store = VoiceStore(tmp_path, max_count=3, max_bytes=10 * 1024 * 1024)
    owner = "0123456789abcdef"
    outcomes = []

    def add():
        try:
            store.create(owner, io.BytesIO(wav_bytes(0.6)), name=None, text=None, duration=0.6, audio_format="wav")
            outcomes.append(201)
        except APIError as exc:
            outcomes.append(exc.status_code)

    threads = [threading.Thread(target=add) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == [201] * 3 + [409] * 7
    assert len(store.list(owner)) == 3
    assert not list((tmp_path / owner).glob(".tmp-*"))          # no leftovers


def test_a_half_written_voice_is_never_listed(tmp_path):
    store = VoiceStore(tmp_path, max_count=5, max_bytes=10 * 1024 * 1024)
    owner = "0123456789abcdef"
    (tmp_path / owner / ".tmp-voice_AAAAAAAAAAAAAAAA").mkdir(parents=True)     # a writer died here
    (tmp_path / owner / "voice_BBBBBBBBBBBBBBBB").mkdir()                       # no meta: not a voice
    assert store.list(owner) == [] and store.read(owner, "voice_BBBBBBBBBBBBBBBB") is None
    with pytest.raises(ValueError):
        store.list("../../etc")                                   # never a path from outside


# --- voice_id on the model routes -------------------------------------------------------------------


def test_voice_id_stands_in_for_the_reference(app_and_entries):
    app, entries = app_and_entries
    client = TestClient(app)
    audio = wav_bytes(1.2, 220, 16000)
    voice = create(client, audio, text="The voice's own words.").json()
    vevo = entries["Vevo"]

    upload = client.post("/api/tts/vevo", data={"text": "Hi."}, files={"reference_audio": ("r.wav", audio)},
                         headers=key())
    by_id = client.post("/api/tts/vevo", data={"text": "Hi.", "voice_id": voice["voice_id"]}, headers=key())
    assert upload.status_code == by_id.status_code == 200, by_id.text
    sent_upload, sent_voice = vevo.payloads[-2], vevo.payloads[-1]
    assert np.array_equal(sent_upload["reference"], sent_voice["reference"])
    expected = decode_audio(io.BytesIO(audio), field="x", target_sr=SR, max_seconds=60)
    assert sent_voice["prompt_key"] == sent_upload["prompt_key"] == prompt_key(expected, SR)
    assert sent_upload["reference_text"] is None and sent_voice["reference_text"] == "The voice's own words."
    # The same reference again: the entry's kept encodings, shown in Server-Timing.
    assert 'prompt;desc="miss"' in upload.headers["Server-Timing"]
    assert 'prompt;desc="hit";dur=0.0' in by_id.headers["Server-Timing"]

    own_text = client.post("/api/tts/vevo", data={"text": "Hi.", "voice_id": voice["voice_id"],
                                                  "reference_text": "Mine."}, headers=key())
    assert own_text.status_code == 200 and vevo.payloads[-1]["reference_text"] == "Mine."

    builtin = client.post("/api/tts/maskgct", data={"text": "Hi.", "voice_id": "default"}, headers=key())
    assert builtin.status_code == 200 and entries["MaskGCT"].payloads[-1]["reference_text"].startswith("I almost")
    assert entries["MaskGCT"].payloads[-1]["prompt_key"]

    noro = client.post("/api/vc/noro", data={"voice_id": voice["voice_id"]},
                       files={"source_audio": ("s.wav", wav_bytes(1.0, 150, 16000))}, headers=key())
    assert noro.status_code == 200 and entries["Noro"].payloads[-1]["target"].size == int(1.2 * 16000)

    tse = client.post("/api/tse/metis", data={"voice_id": voice["voice_id"]},
                      files={"audio": ("m.wav", wav_bytes(1.0, 150))}, headers=key())
    assert tse.status_code == 200 and "reference" in entries["Metis"].payloads[-1]


def test_voice_id_errors(app_and_entries):
    app, _ = app_and_entries
    client = TestClient(app)
    audio = wav_bytes(1.0)
    voice_id = create(client, audio).json()["voice_id"]

    both = client.post("/api/tts/vevo", data={"text": "Hi.", "voice_id": voice_id},
                       files={"reference_audio": ("r.wav", audio)}, headers=key())
    assert both.status_code == 422 and "not both" in both.json()["detail"][0]["msg"]
    neither = client.post("/api/tts/vevo", data={"text": "Hi."}, headers=key())
    assert neither.status_code == 422 and "voice_id" in neither.json()["detail"][0]["msg"]
    unknown = client.post("/api/vc/vevo-timbre", data={"voice_id": "voice_" + "Z" * 16},
                          files={"source_audio": ("s.wav", audio)}, headers=key())
    assert unknown.status_code == 404
    theirs = client.post("/api/tts/vevo", data={"text": "Hi.", "voice_id": voice_id}, headers=key(1))
    assert theirs.status_code == 404 and theirs.json()["detail"] == client.get(
        f"/api/voices/{voice_id}", headers=key(1)).json()["detail"]
    noro_both = client.post("/api/vc/noro", data={"voice_id": voice_id},
                            files={"source_audio": ("s.wav", audio), "target_audio": ("t.wav", audio)},
                            headers=key())
    assert noro_both.status_code == 422 and "voice_id" in noro_both.json()["detail"][0]["msg"]
    # Metis TTS needs no reference at all: without one the built-in voice speaks, as before.
    assert client.post("/api/tts/metis", data={"text": "Hi."}, headers=key()).status_code == 200
