"""The Python original, as benches/live_python.rs runs it: claude-mpm's own
EventAggregator (claude_mpm.services.event_aggregator, from the claude-mpm
package on PyPI) connected to the bench's broadcast, saving its session files
in SAVE_DIR. SIGUSR1 prints how many events it has captured so far (its own
counter, `total_events_captured`); SIGTERM stops it as `stop()` does (saving
the active sessions).

Usage: python3 original.py HOST PORT SAVE_DIR
"""

import signal
import sys
import threading

from claude_mpm.services.event_aggregator import EventAggregator


def main() -> None:
    host, port, save_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    aggregator = EventAggregator(host=host, port=port, save_dir=save_dir)
    done = threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: print(f"captured {aggregator.total_events_captured}", flush=True))
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    if not aggregator.start():
        print("error: the Python original did not connect", file=sys.stderr)
        sys.exit(1)
    print("started", flush=True)
    while not done.wait(3600):
        pass
    aggregator.stop()


if __name__ == "__main__":
    main()
