"""Unit tests: codec token validation and the sliding-window rate limiter (fake clock)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from serve_app.ratelimit import SlidingWindowLimiter
from serve_app.tokens import InvalidTokens, parse_dualcodec_tokens, parse_facodec_tokens
from tests.serving_fakes import KEYS, make_app


def test_dualcodec_tokens_accepts_array_and_encode_response():
    codes, model = parse_dualcodec_tokens("[[1, 2, 3], [4, 5, 6]]", None, 600)
    assert model == "12hz_v1" and codes.shape == (2, 3)
    response = {"tokens": [[16383, 0], [4095, 1]], "sample_rate": 24000, "model": "12hz_v1", "num_quantizers": 2}
    codes, model = parse_dualcodec_tokens(json.dumps(response), None, 600)
    assert codes.tolist() == [[16383, 0], [4095, 1]]


@pytest.mark.parametrize("text,model,needle", [
    ("not json", None, "not valid JSON"),
    ("[]", None, "non-empty"),
    ("[[1, 2], [3]]", None, "different lengths"),
    ("[[1, 2.5]]", None, "not an integer"),
    ("[[1, true]]", None, "not an integer"),
    ("[[16384]]", None, "outside 0..16383"),
    ("[[1], [4096]]", None, "outside 0..4095"),
    ("[[1], [1024]]", "25hz_v1", "outside 0..1023"),
    (json.dumps([[0]] * 9), None, "at most 8"),
    (json.dumps([[0] * 7501]), None, "at most 7500"),
    (json.dumps({"tokens": [[1]], "model": "25hz_v1"}), "12hz_v1", "made by model"),
    ('{"codes": [[1]]}', None, "'tokens'"),
])
def test_dualcodec_tokens_rejections(text, model, needle):
    with pytest.raises(InvalidTokens) as info:
        parse_dualcodec_tokens(text, model, 600)
    assert needle in info.value.detail


def facodec_response(frames=4):
    return {"prosody_tokens": [[1] * frames], "content_tokens": [[2] * frames] * 2,
            "acoustic_tokens": [[3] * frames] * 3, "timbre_tokens": [0.5] * 256,
            "sample_rate": 16000, "frame_rate": 80}


def test_facodec_tokens():
    parsed = parse_facodec_tokens(json.dumps(facodec_response()), 600)
    assert parsed["content_tokens"].shape == (2, 4) and parsed["timbre_tokens"].shape == (256,)
    bad = facodec_response()
    bad["acoustic_tokens"] = [[3] * 4] * 2
    with pytest.raises(InvalidTokens, match="expected 3"):
        parse_facodec_tokens(json.dumps(bad), 600)
    bad = facodec_response()
    bad["content_tokens"] = [[2] * 5] * 2
    with pytest.raises(InvalidTokens, match="other token fields"):
        parse_facodec_tokens(json.dumps(bad), 600)
    bad = facodec_response()
    bad["timbre_tokens"] = [0.1] * 10
    with pytest.raises(InvalidTokens, match="256 numbers"):
        parse_facodec_tokens(json.dumps(bad), 600)
    with pytest.raises(InvalidTokens, match="missing prosody_tokens"):
        parse_facodec_tokens("{}", 600)


def test_decode_routes_validate_tokens_against_the_deployed_model():
    """Real tiny codec services behind the routes: malformed or out-of-range tokens are a 400 naming
    the rule; tokens of the other DualCodec model are refused; valid ones decode."""
    from deployments.codec import DualCodecService, FACodecService

    services = {"DualCodec": DualCodecService({}, weights="tiny"), "FACodec": FACodecService(weights="tiny")}
    app, _ = make_app(services)
    with TestClient(app) as c:
        h = {"X-API-Key": KEYS[-1]}
        r = c.post("/api/codec/dualcodec/decode", headers=h, data={"tokens": "[[99999]]"})
        assert r.status_code == 400 and "outside 0..16383" in r.json()["detail"]
        other = json.dumps({"tokens": [[1, 2], [3, 4]], "model": "25hz_v1"})
        r = c.post("/api/codec/dualcodec/decode", headers=h, data={"tokens": other, "model": "12hz_v1"})
        assert r.status_code == 400 and "25hz_v1" in r.json()["detail"]
        r = c.post("/api/codec/dualcodec/decode", headers=h, data={"tokens": "[[1, 2], [3, 4]]"})
        assert r.status_code == 200 and r.headers["x-sample-rate"] == "24000"
        r = c.post("/api/codec/facodec/decode", headers=h, data={"tokens": "[1, 2]"})
        assert r.status_code == 400 and "facodec/encode" in r.json()["detail"]
        r = c.post("/api/codec/facodec/decode", headers=h, data={"tokens": json.dumps(facodec_response())})
        assert r.status_code == 400 and "timbre_tokens" in r.json()["detail"]   # the tiny timbre is 16 wide


def test_codec_routes_without_their_deployment_answer_503():
    app, _ = make_app()
    with TestClient(app) as c:
        r = c.post("/api/codec/dualcodec/decode", headers={"X-API-Key": KEYS[-1]}, data={"tokens": "[[1, 2]]"})
        assert r.status_code == 503 and "DualCodec" in r.json()["detail"]


def test_sliding_window_minute_and_hour():
    limiter = SlidingWindowLimiter(per_minute=2, per_hour=3)
    assert limiter.hit("k", "POST /a", 0.0).remaining == 1
    assert limiter.hit("k", "POST /a", 1.0).allowed
    denied = limiter.hit("k", "POST /a", 2.0)
    assert not denied.allowed and denied.retry_after_s == 58 and denied.limit == 2
    # another endpoint: its own minute budget, but the hour budget is shared
    other = limiter.hit("k", "POST /b", 3.0)
    assert other.allowed and other.remaining == 0 and other.limit == 3  # hour is the tighter limit now
    assert not limiter.hit("k", "POST /b", 4.0).allowed
    # a minute later the per-endpoint window has slid, but the hour is still full
    late = limiter.hit("k", "POST /a", 61.0)
    assert not late.allowed and late.limit == 3 and late.retry_after_s == 3539
    # another key is independent
    assert limiter.hit("other", "POST /a", 61.0).allowed
    # after an hour everything frees up
    assert limiter.hit("k", "POST /a", 3601.5).allowed


def test_refused_requests_do_not_extend_the_window():
    limiter = SlidingWindowLimiter(per_minute=1, per_hour=100)
    assert limiter.hit("k", "e", 0.0).allowed
    for t in range(1, 60):
        assert not limiter.hit("k", "e", float(t)).allowed
    assert limiter.hit("k", "e", 60.5).allowed
