#!/usr/bin/env bash
# Run one scenario of the real Claude Code CLI end to end, offline, on a fresh machine: installs what
# is needed (cached), runs ../shared/real-claude/run.sh on a copy that also knows our own scenarios,
# writes OUT/expected.json (truth.py), and exits non-zero with a message saying what failed.
#
# Usage:  tests/real-claude/run-scenario.sh [SCENARIO]      (or SCENARIO=... in the environment)
# Env (all optional; the run.sh ones are passed through unchanged):
#   SCENARIO       a (shared) | nest | compact (ours, tests/real-claude/scenarios.*)      default a
#   OUT            output folder                        default target/real-claude/out/SCENARIO[-MPM_HOOK]
#   WORKROOT       scratch folder of run.sh             default OUT.work (so parallel runs never share one)
#   NO_MONITOR, MPM_HOOK, MPM_EVENTS, EXTRA_HOOK_CMD, PRE_RUN, AFTER_MONITOR, MON_PORT   see run.sh
#   REAL_CLAUDE_CACHE   where setup.sh installs Claude Code (npm) and claude-mpm (pip)
#                       default target/real-claude-cache (CI caches target/)
#   REAL_CLAUDE_SHARED  the shared harness                default ../shared/real-claude beside the repo
#   REAL_CLAUDE_HARNESS where the patched copy of it goes default target/real-claude-harness
# Prints the run's summary; the last line is "OK: ..." or the script exits non-zero with "ERROR: ...".
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
die() { echo "ERROR: run-scenario.sh: $*" >&2; exit 1; }

[ $# -le 1 ] || die "usage: $0 [SCENARIO]"
SCENARIO=${1:-${SCENARIO:-a}}
export SCENARIO
export MPM_HOOK=${MPM_HOOK:-full}
case "$SCENARIO" in *[!a-z0-9]*|"") die "SCENARIO must be lowercase letters and digits (the fake API's tag), got '$SCENARIO'" ;; esac

SHARED=${REAL_CLAUDE_SHARED:-$REPO/../shared/real-claude}
[ -x "$SHARED/run.sh" ] && [ -f "$SHARED/scenario.py" ] || die "no harness at $SHARED (set REAL_CLAUDE_SHARED)"
SHARED=$(cd "$SHARED" && pwd)
for tool in python3 git curl npm timeout flock; do
  command -v "$tool" >/dev/null || die "'$tool' is not installed (the harness needs python3, git, curl, npm, coreutils, util-linux)"
done

# absolute: run.sh starts Claude Code from inside the scratch project
export REAL_CLAUDE_CACHE=$(realpath -m "${REAL_CLAUDE_CACHE:-$REPO/target/real-claude-cache}")
HARNESS_ROOT=$(realpath -m "${REAL_CLAUDE_HARNESS:-$REPO/target/real-claude-harness}")
mkdir -p "$REAL_CLAUDE_CACHE" "$HARNESS_ROOT"

# ---------------------------------------------------------------- install (cached; one at a time)
NEED_MPM=0
{ [ "${NO_MONITOR:-0}" != 1 ] || [ "$MPM_HOOK" != none ]; } && NEED_MPM=1
SETUP_LOG=$REAL_CLAUDE_CACHE/setup.log
exec 9>"$REAL_CLAUDE_CACHE/.lock"
flock 9
t0=$(date +%s)
if ! ENV_LINES=$(NO_MPM=$((1 - NEED_MPM)) "$SHARED/setup.sh" 2>"$SETUP_LOG"); then
  tail -20 "$SETUP_LOG" >&2
  die "setup.sh failed (npm install of Claude Code or pip install of claude-mpm; log: $SETUP_LOG)"
fi
flock -u 9; exec 9>&-
eval "$ENV_LINES"
export CLAUDE_BIN
[ "$NEED_MPM" = 1 ] && export MPM_VENV
[ -x "$CLAUDE_BIN" ] || die "setup.sh gave no Claude Code binary ($CLAUDE_BIN)"
echo "setup: $(($(date +%s) - t0)) s (cache $REAL_CLAUDE_CACHE)"

# ---------------------------------------------------------------- the harness copy with our scenarios
# run.sh keeps its scenarios in a `case` and scenario.py in dicts, and neither reads a scenario from
# elsewhere, so we run a copy: the shared files unchanged, plus our case arms inserted at the top of
# run.sh's `case "$SCENARIO" in`, our scenarios.py appended to scenario.py, and our agent files added
# to project_template/.claude/agents. The copy is named by the hash of its inputs and built once.
OURS=("$HERE/scenarios.sh" "$HERE/scenarios.py" "$HERE"/agents/*.md)
KEY=$( (cd "$SHARED" && find . -type f ! -path './out-*' ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum;
        sha256sum "${OURS[@]}" "$HERE/$(basename "$0")") | sha256sum | cut -c1-16)
H=$HARNESS_ROOT/$KEY
if [ ! -f "$H/.complete" ]; then
  TMP=$(mktemp -d "$HARNESS_ROOT/.build.XXXXXX")
  cp -r "$SHARED/." "$TMP/"
  rm -rf "$TMP"/out-* "$TMP"/__pycache__
  chmod -R u+w "$TMP"
  python3 - "$TMP" "$HERE" <<'EOF' || { rm -rf "$TMP"; die "could not add our scenarios to the harness copy (has run.sh or scenario.py changed shape?)"; }
import os, shutil, sys
tmp, here = sys.argv[1], sys.argv[2]
run = open(os.path.join(tmp, "run.sh")).read()
anchor = 'case "$SCENARIO" in\n'
if run.count(anchor) != 1:
    sys.exit("run.sh: expected exactly one line 'case \"$SCENARIO\" in'")
arms = open(os.path.join(here, "scenarios.sh")).read()
run = run.replace(anchor, anchor + "  # ---- mpm-aggregate tests/real-claude/scenarios.sh\n" + arms + "  # ---- end\n")
open(os.path.join(tmp, "run.sh"), "w").write(run)
with open(os.path.join(tmp, "scenario.py"), "a") as f:
    f.write("\n\n# ---- appended from mpm-aggregate tests/real-claude/scenarios.py\n")
    f.write(open(os.path.join(here, "scenarios.py")).read())
agents = os.path.join(tmp, "project_template", ".claude", "agents")
for name in sorted(os.listdir(os.path.join(here, "agents"))):
    if name.endswith(".md"):
        if os.path.exists(os.path.join(agents, name)):
            sys.exit(f"agent {name} exists in the shared project_template too")
        shutil.copy(os.path.join(here, "agents", name), agents)
EOF
  bash -n "$TMP/run.sh" || { rm -rf "$TMP"; die "the patched run.sh does not parse"; }
  python3 -c "import sys; sys.path.insert(0, sys.argv[1]); import scenario" "$TMP" \
    || { rm -rf "$TMP"; die "the patched scenario.py does not import"; }
  touch "$TMP/.complete"
  mv -T "$TMP" "$H" 2>/dev/null || rm -rf "$TMP"   # another run may have built the same copy meanwhile
fi

# ---------------------------------------------------------------- run
SUFFIX=""; [ "$MPM_HOOK" != full ] && SUFFIX="-$MPM_HOOK"; [ "${MPM_EVENTS:-all}" != all ] && SUFFIX="$SUFFIX-$MPM_EVENTS"
export OUT=$(realpath -m "${OUT:-$REPO/target/real-claude/out/$SCENARIO$SUFFIX}")
export WORKROOT=$(realpath -m "${WORKROOT:-$OUT.work}")
# scenario.py finds the project dir from the "Primary working directory:" line in the first messages and
# falls back to FAKE_CWD, else the fake API's own cwd; after a /compact that line has moved, so without
# FAKE_CWD scripted file tools would aim at whatever folder this script was started in.
export FAKE_CWD=$WORKROOT/$SCENARIO$SUFFIX/proj
t0=$(date +%s)
set +e
"$H/run.sh"
rc=$?
set -e
secs=$(($(date +%s) - t0))
if [ $rc != 0 ]; then
  echo "ERROR: run-scenario.sh: scenario $SCENARIO failed after $secs s (run.sh exit $rc)." >&2
  echo "  look at: $OUT/summary.txt, $OUT/claude-stderr-*.txt, $OUT/stream-*.jsonl, $OUT/api-requests.jsonl," >&2
  echo "           $WORKROOT/$SCENARIO$SUFFIX/fake_api.log, $OUT/monitor.log" >&2
  exit $rc
fi
python3 "$H/truth.py" "$OUT" > "$OUT/expected.json" || die "truth.py failed on $OUT"
echo "OK: scenario $SCENARIO ran in $secs s; outputs in $OUT (expected.json = truth.py)"
