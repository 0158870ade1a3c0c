"""The broadcast of benches/live_python.rs: a python-socketio + aiohttp server
(claude-mpm's monitor stack) that waits for its clients, then broadcasts the
fixture capture replicated, as the monitor broadcasts each event to every client.

--mode short: each copy of the capture gets its own two session ids (many
short sessions). --mode long: every copy keeps the capture's two session ids
(one long session each; a `Stop` ends a turn every ~30 events). Each copy is a
minute later than the previous one, from now on, so that every event is new
content and no session looks idle to a sweeper.

--rate 0 broadcasts as fast as python-socketio goes (its natural rate); --rate R
spaces events 1/R s apart. History requests (both kinds) are answered empty.

Usage: python3 emitter.py --port P --capture FILE --events N [--mode short|long]
       [--clients K] [--rate R]
Prints "ready" when listening, "connected K" when K clients are there, and
"broadcast N SECONDS" when done; a line on stdin starts the next broadcast.
"""

import argparse
import asyncio
import datetime
import json
import sys
import time

import socketio
from aiohttp import web

SESSION_A = "5283b66c-2b29-4ee0-9698-f410f3a393fd"
SESSION_B = "7a91d44e-8c12-4f3b-ae56-9b2c1e0f8d35"
CAPTURE_MINUTE = "2026-11-24T04:24:"


def copies(lines, mode, start_minute):
    """Yields (event name, data) forever: the capture, copy after copy."""
    copy = 0
    while True:
        minute = (start_minute + datetime.timedelta(minutes=copy)).strftime("%Y-%m-%dT%H:%M:")
        for name, text in lines:
            text = text.replace(CAPTURE_MINUTE, minute)
            if mode == "short":
                text = text.replace(SESSION_A, f"{copy:08x}-live-{copy:012x}-a").replace(
                    SESSION_B, f"{copy:08x}-live-{copy:012x}-b"
                )
            yield name, json.loads(text)
        copy += 1


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--capture", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--mode", choices=["short", "long"], default="short")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--rate", type=float, default=0.0)
    args = parser.parse_args()

    lines = []
    with open(args.capture, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                v = json.loads(line)
                if not v["event"].startswith("dashboard:"):
                    lines.append((v["event"], json.dumps(v["data"])))

    sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*")
    app = web.Application()
    sio.attach(app)
    clients = set()
    enough = asyncio.Event()

    @sio.event
    async def connect(sid, environ, auth=None):
        clients.add(sid)
        if len(clients) >= args.clients:
            enough.set()

    @sio.event
    async def disconnect(sid, *_):
        clients.discard(sid)

    async def get_history(sid, data):
        await sio.emit("history", {"events": []}, to=sid)

    async def hook_history_get(sid, data):
        await sio.emit("hook:history:response", {"events": [], "total": 0, "filters": {}}, to=sid)

    sio.on("get_history", get_history)
    sio.on("hook:history:get", hook_history_get)

    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.port).start()
    print("ready", flush=True)
    await enough.wait()
    print(f"connected {len(clients)}", flush=True)

    start_minute = datetime.datetime.now(datetime.timezone.utc).replace(second=0, microsecond=0)
    stream = copies(lines, args.mode, start_minute)
    loop = asyncio.get_running_loop()
    while True:
        # Each broadcast starts on a line from the bench (it reads CPU first).
        if not await loop.run_in_executor(None, sys.stdin.readline):
            return
        began = time.monotonic()
        for i in range(args.events):
            name, data = next(stream)
            if args.rate > 0:
                delay = began + i / args.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await sio.emit(name, data)
        print(f"broadcast {args.events} {time.monotonic() - began:.3f}", flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
