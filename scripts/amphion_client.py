"""A small command-line client: call a route, print its progress events live, save the audio.

    .venv/bin/python scripts/amphion_client.py /api/vocoder/hifigan audio=@speech.wav -o out.wav
    .venv/bin/python scripts/amphion_client.py /api/vocoder/generic audio=@mel.npy vocoder_name=nsf_hifigan
    .venv/bin/python scripts/amphion_client.py /api/tts/maskgct text="Hello" reference_audio=@ref.wav

Fields are `name=value`, or `name=@path` for files. The key comes from --key or AMPHION_API_KEY
(default: the development key); the server from --url (default http://127.0.0.1:8000).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from pathlib import Path

import httpx
import websockets

DEV_KEY = "amphion-dev-key-change-in-production"


def parse_fields(items: list[str]) -> tuple[dict, dict]:
    data, files = {}, {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"field {item!r} is not name=value")
        if value.startswith("@"):
            path = Path(value[1:])
            files[name] = (path.name, path.read_bytes())
        else:
            data[name] = value
    return data, files


async def watch(ws_url: str, key: str) -> None:
    async with websockets.connect(ws_url, additional_headers={"X-API-Key": key}) as ws:
        async for message in ws:
            event = json.loads(message)
            bar = "#" * int(event["progress"] * 20)
            print(f"  [{bar:<20}] {event['status']:<9} {event['stage']} "
                  f"{event['step']}/{event['total_steps']} {event['detail']}", file=sys.stderr)


async def run(opts) -> int:
    data, files = parse_fields(opts.fields)
    task_id = f"cli-{uuid.uuid4().hex[:12]}"
    ws_url = opts.url.replace("http", "ws", 1) + f"/ws/progress/{task_id}"
    watcher = asyncio.create_task(watch(ws_url, opts.key))
    await asyncio.sleep(0.2)  # subscribe before the request starts, to see every event
    async with httpx.AsyncClient(timeout=opts.timeout) as client:
        r = await client.post(opts.url + opts.route, headers={"X-API-Key": opts.key, "X-Task-ID": task_id},
                              data=data, files=files or None)
    try:
        await asyncio.wait_for(watcher, 5)
    except (asyncio.TimeoutError, websockets.ConnectionClosed):
        watcher.cancel()
    if r.status_code != 200:
        print(f"HTTP {r.status_code}: {r.text}", file=sys.stderr)
        return 1
    if r.headers.get("content-type", "").startswith("audio/"):
        Path(opts.output).write_bytes(r.content)
        print(f"saved {opts.output}: {r.headers.get('x-audio-duration')} s at {r.headers.get('x-sample-rate')} Hz, "
              f"weights {r.headers.get('x-amphion-weights')}, timing {r.headers.get('server-timing')}")
    else:
        print(json.dumps(r.json(), indent=2))
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("route")
    parser.add_argument("fields", nargs="*")
    parser.add_argument("-o", "--output", default="output.wav")
    parser.add_argument("--url", default=os.environ.get("AMPHION_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--key", default=os.environ.get("AMPHION_API_KEY", DEV_KEY))
    parser.add_argument("--timeout", type=float, default=600)
    sys.exit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
