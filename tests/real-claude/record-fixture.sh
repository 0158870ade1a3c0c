#!/usr/bin/env bash
# Record fixtures from the real Claude Code CLI: runs each named scenario with run-scenario.sh
# (claude-mpm's fast hook and its monitor, so the run has a monitor capture too) and copies the same
# files as ../shared/fixtures/claude-code-2.1/ holds into tests/fixtures/claude-code/SCENARIO-mpm-fast/.
#
# Usage:  tests/real-claude/record-fixture.sh nest compact
# Env:    MPM_HOOK (default fast), RECORD_ROOT (default /home/dev)
# Everything the recorded files name (the project, Claude Code's HOME, the harness, claude-mpm, the output
# folder) lives under RECORD_ROOT, so no path of the recording machine ends up in the fixtures; the shared
# fixtures were recorded under /home/dev/work the same way. RECORD_ROOT/.cache keeps the install for the
# next recording; RECORD_ROOT/work and RECORD_ROOT/out are removed after each scenario.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
[ $# -ge 1 ] || { echo "usage: $0 SCENARIO..." >&2; exit 2; }
ROOT=${RECORD_ROOT:-/home/dev}
export MPM_HOOK=${MPM_HOOK:-fast}
export REAL_CLAUDE_CACHE=$ROOT/.cache/real-claude REAL_CLAUDE_HARNESS=$ROOT/real-claude
export REAL_CLAUDE_SHARED=${REAL_CLAUDE_SHARED:-$REPO/../shared/real-claude}
for s in "$@"; do
  out=$ROOT/out/$s-$MPM_HOOK
  OUT=$out WORKROOT=$ROOT/work "$HERE/run-scenario.sh" "$s"
  dest=$REPO/tests/fixtures/claude-code/$s-mpm-$MPM_HOOK
  rm -rf "$dest"; mkdir -p "$dest"
  cp -r "$out/hooks.jsonl" "$out/transcripts" "$out/monitor-capture.jsonl" "$out/settings.json" "$out"/stream-*.jsonl \
        "$out/expected.json" "$dest/"
  # the expected reconstruction must come out the same from the copied files
  python3 "$REAL_CLAUDE_SHARED/truth.py" "$dest" | cmp -s - "$dest/expected.json" \
    || { echo "ERROR: truth.py on $dest differs from the run's expected.json" >&2; exit 1; }
  # claude-mpm's fast hook posts each payload with a background curl (--max-time 0.3) and nothing retries
  # it: now and then one is lost (seen: the last turn's Stop). A fixture should hold the whole broadcast.
  if [ "$MPM_HOOK" = fast ]; then
    python3 - "$dest" <<'EOF2' || { echo "ERROR: $dest: the monitor capture lost hook payloads; record again" >&2; exit 1; }
import collections, json, sys
d = sys.argv[1]
hooks = collections.Counter(json.loads(l)["hook_event_name"] for l in open(d + "/hooks.jsonl") if l.strip())
mon = collections.Counter()
for l in open(d + "/monitor-capture.jsonl"):
    m = json.loads(l).get("data")
    if isinstance(m, dict) and isinstance(m.get("data"), dict) and m["data"].get("hook_event_name"):
        mon[m["data"]["hook_event_name"]] += 1
missing = {k: hooks[k] - mon[k] for k in hooks if hooks[k] != mon[k]}
if missing:
    sys.exit(f"hook payloads missing from the capture (event: count): {missing}")
EOF2
  fi
  for p in "$REPO" "$(cd "$REAL_CLAUDE_SHARED" && pwd)"; do
    if grep -rlqF "$p" "$dest"; then echo "ERROR: $dest names $p" >&2; exit 1; fi
  done
  rm -rf "$out" "$ROOT/work/$s-$MPM_HOOK" "$out.work"
  echo "recorded $dest ($(du -sh "$dest" | cut -f1))"
done
