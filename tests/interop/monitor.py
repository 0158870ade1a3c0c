"""A stand-in for claude-mpm's monitor, on the same stack (python-socketio +
aiohttp): it welcomes each client like the real monitor, answers get_history,
and once the first client is connected broadcasts every line of a capture file
(`{"event": name, "data": payload}`), exactly as the monitor broadcast them.

Usage: python3 monitor.py --port PORT --capture FILE
Prints "ready" when listening and "broadcast N" when it has sent the capture.
"""

import argparse
import asyncio
import json
import sys

import socketio
from aiohttp import web


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--capture", required=True)
    args = parser.parse_args()

    with open(args.capture, encoding="utf-8") as f:
        lines = [json.loads(line) for line in f if line.strip()]

    sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*")
    app = web.Application()
    sio.attach(app)
    history = []
    first_client = asyncio.Event()

    @sio.event
    async def connect(sid, environ, auth=None):
        await sio.emit("dashboard:welcome", {"message": "Connected to Claude MPM Unified Monitor", "session_id": sid}, to=sid)
        first_client.set()

    @sio.event
    async def get_history(sid, data):
        limit = (data or {}).get("limit", 1000)
        await sio.emit("history", {"events": history[-limit:]}, to=sid)

    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.port).start()
    print("ready", flush=True)

    await first_client.wait()
    await asyncio.sleep(1.0)
    for line in lines:
        history.append(line)
        await sio.emit(line["event"], line["data"])
    print(f"broadcast {len(lines)}", flush=True)
    while True:
        await asyncio.sleep(3600)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
