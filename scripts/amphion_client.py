"""A small command-line client: call a route, print its progress events live, save the audio.

    .venv/bin/python scripts/amphion_client.py /api/vocoder/hifigan audio=@speech.wav -o out.wav
    .venv/bin/python scripts/amphion_client.py /api/vocoder/generic audio=@mel.npy vocoder_name=nsf_hifigan
    .venv/bin/python scripts/amphion_client.py /api/tts/maskgct text="Hello" reference_audio=@ref.wav
    .venv/bin/python scripts/amphion_client.py /api/tts/metis text="One. Two, three." --stream --play

Fields are `name=value`, or `name=@path` for files. The key comes from --key or AMPHION_API_KEY
(default: the development key); the server from --url (default http://127.0.0.1:8000).

--stream asks a TTS route for `stream=true` and writes each sentence's audio to the output file as
it arrives (WAV unless `response_format=pcm` is given); --play also pipes it to a player as it
arrives: --player's command (reads the audio on its standard input), else the first of ffplay,
mpv and aplay found; with none, the audio is only saved.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

import httpx
import websockets

DEV_KEY = "amphion-dev-key-change-in-production"
#: Players that take a WAV stream on standard input, in order of preference.
PLAYERS = (
    ("ffplay", ["-nodisp", "-autoexit", "-loglevel", "error", "-i", "-"]),
    ("mpv", ["--really-quiet", "--no-video", "-"]),
    ("aplay", ["-q", "-"]),
)


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


def player_command(opts) -> list[str] | None:
    if opts.player:
        return ["sh", "-c", opts.player]
    for name, args in PLAYERS:
        if shutil.which(name):
            return [name, *args]
    return None


async def receive_stream(r: httpx.Response, opts, started: float) -> int:
    """Write the streamed audio to the output file (and the player) chunk by chunk, as it arrives;
    ``started``: when the request was sent (perf_counter)."""
    command = player_command(opts) if opts.play else None
    if opts.play and command is None:
        print("no player found (ffplay, mpv, aplay; or --player CMD): saving only", file=sys.stderr)
    player = await asyncio.create_subprocess_exec(*command, stdin=asyncio.subprocess.PIPE) if command else None
    chunks, first = 0, None
    try:
        with open(opts.output, "wb") as out:
            async for chunk in r.aiter_raw():
                first = first if first is not None else time.perf_counter() - started
                chunks += 1
                out.write(chunk)
                out.flush()
                if player is not None:
                    player.stdin.write(chunk)
                    await player.stdin.drain()
    except httpx.RemoteProtocolError:
        print(f"the stream was cut off after {chunks} chunk(s): the server failed part-way (see the progress "
              f"events); {opts.output} holds what arrived", file=sys.stderr)
        return 1
    finally:
        if player is not None:
            player.stdin.close()
            await player.wait()
    print(f"streamed {r.headers.get('x-amphion-sentences')} sentence(s) in {chunks} chunk(s) to {opts.output}: "
          f"first audio after {first or 0:.2f} s, all after {time.perf_counter() - started:.2f} s; "
          f"{r.headers.get('x-sample-rate')} Hz, weights {r.headers.get('x-amphion-weights')}")
    return 0


async def run(opts) -> int:
    data, files = parse_fields(opts.fields)
    if opts.stream:
        data["stream"] = "true"
    task_id = f"cli-{uuid.uuid4().hex[:12]}"
    ws_url = opts.url.replace("http", "ws", 1) + f"/ws/progress/{task_id}"
    watcher = asyncio.create_task(watch(ws_url, opts.key))
    await asyncio.sleep(0.2)  # subscribe before the request starts, to see every event
    streamed = None
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=opts.timeout) as client:
        async with client.stream("POST", opts.url + opts.route, headers={"X-API-Key": opts.key, "X-Task-ID": task_id},
                                 data=data, files=files or None) as r:
            if r.status_code == 200 and opts.stream:
                streamed = await receive_stream(r, opts, started)
            else:
                await r.aread()
    try:
        await asyncio.wait_for(watcher, 5)
    except (asyncio.TimeoutError, websockets.ConnectionClosed):
        watcher.cancel()
    if streamed is not None:
        return streamed
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
    parser.add_argument("--stream", action="store_true", help="TTS: stream=true, saving sentences as they arrive")
    parser.add_argument("--play", action="store_true", help="with --stream: also play the audio as it arrives")
    parser.add_argument("--player", help=f"command that plays audio from its standard input (with --play; "
                                         f"default: the first of {', '.join(n for n, _ in PLAYERS)} found)")
    sys.exit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
