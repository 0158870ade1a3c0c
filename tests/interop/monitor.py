"""A stand-in for claude-mpm's monitor, on the same stack (python-socketio +
aiohttp): it welcomes each client like the real monitor, answers history
requests, and once the first client is connected broadcasts every line of a
capture file (`{"event": name, "data": payload}`), exactly as the monitor
broadcast them.

History: `--history get_history` (default) answers `get_history` with
`history` `{"events": [{"event", "data"}, ...]}`; `--history mpm` answers only
`hook:history:get` with `hook:history:response` `{"events": [data, ...],
"total", "filters"}`, as claude-mpm 5.9.10's monitor does
(services/monitor/handlers/hooks.py). `--preload N` puts the first N capture
lines in the history before any client connects.

Usage: python3 monitor.py --port PORT --capture FILE [--history get_history|mpm] [--preload N]
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
    parser.add_argument("--history", choices=["get_history", "mpm"], default="get_history")
    parser.add_argument("--preload", type=int, default=0)
    args = parser.parse_args()

    with open(args.capture, encoding="utf-8") as f:
        lines = [json.loads(line) for line in f if line.strip()]

    sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*")
    app = web.Application()
    sio.attach(app)
    # claude-mpm's history holds events, never its dashboard traffic.
    history = [line for line in lines if not line["event"].startswith("dashboard:")][: args.preload]
    first_client = asyncio.Event()

    @sio.event
    async def connect(sid, environ, auth=None):
        await sio.emit("dashboard:welcome", {"message": "Connected to Claude MPM Unified Monitor", "session_id": sid}, to=sid)
        first_client.set()

    async def get_history(sid, data):
        limit = (data or {}).get("limit", 1000)
        await sio.emit("history", {"events": history[-limit:]}, to=sid)

    async def hook_history_get(sid, data):
        limit = data.get("limit", 100)
        events = [line["data"] for line in history]
        if limit > 0:
            events = events[-limit:]
        await sio.emit(
            "hook:history:response",
            {"events": events, "total": len(events), "filters": {"type": None, "session_id": None, "limit": limit}},
            room=sid,
        )

    if args.history == "mpm":
        sio.on("hook:history:get", hook_history_get)
    else:
        sio.on("get_history", get_history)

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
