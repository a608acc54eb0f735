#!/usr/bin/env bash
# Tries the console as a new user would, in a real terminal (tmux), and records every step.
#
#   scripts/tmux_demo.sh [CAPTURE_DIR]
#
# Starts `.venv/bin/wattlab --sample` (default lab: local + simulated Orin + simulated H100) in a
# detached 160x48 tmux session with its own WATTLAB_AGENT_HOME and WATTLAB_LOGS in a temp dir, checks
# that every device starts sampling by itself once connected and that power moves and GWP grows on
# the simulated devices; then from the keyboard: lists the keys (?), opens the simulated Orin, stops
# its sampling job, starts SingleStream (j, 1024 queries), checks queries count up, stops it (x), goes
# back and quits (q, y: the dialog says jobs keep running). Each step's screen is saved with capture-pane. Exits
# non-zero at the first failed check; always stops the isolated agent daemon and kills the tmux session.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TMP="$(mktemp -d -t wattlab-demo-XXXXXX)"
CAPTURES="${1:-$TMP/captures}"
SESSION="wattlab-demo-$$"
export WATTLAB_AGENT_HOME="$TMP/agent" WATTLAB_LOGS="$TMP/logs"
mkdir -p "$CAPTURES" "$WATTLAB_LOGS"
STEP=0

cleanup() {
    tmux kill-session -t "$SESSION" 2>/dev/null || true
    # The jobs left running on purpose by "quit" live in the isolated agent daemon: stop it.
    "$ROOT/.venv/bin/wattlab" agent stop >/dev/null 2>&1 || true
    case "$CAPTURES" in "$TMP"/*) ;; *) rm -rf "$TMP" ;; esac  # keep the temp dir only if it holds the screens
}
trap cleanup EXIT

screen() { tmux capture-pane -p -t "$SESSION"; }

capture() {  # capture NAME: save the current screen as NN-NAME.txt
    STEP=$((STEP + 1))
    screen > "$CAPTURES/$(printf '%02d' "$STEP")-$1.txt"
}

fail() {
    capture "failed"
    echo "FAIL: $*" >&2
    echo "screens: $CAPTURES" >&2
    exit 1
}

wait_for() {  # wait_for REGEX SECONDS: until the screen matches
    local deadline=$((SECONDS + $2))
    while ! screen | grep -Eq -- "$1"; do
        [ "$SECONDS" -lt "$deadline" ] || fail "no '$1' on screen after $2 s"
        sleep 0.2
    done
}

keys() { tmux send-keys -t "$SESSION" "$@"; sleep 0.3; }

row() { screen | grep -E "^ *$1 " | head -1; }  # the fleet row of a host

number() {  # number FIELD LINE: power (W) or GWP (g, from µg/mg/g/kg) of a fleet row, "" if none
    "$ROOT/.venv/bin/python" - "$1" "$2" <<'PY'
import re, sys
field, line = sys.argv[1], sys.argv[2]
scale = {"µg": 1e-6, "mg": 1e-3, "g": 1.0, "kg": 1e3, "W": 1.0, "kW": 1e3}
pat = r"([0-9.]+) (W|kW)\b" if field == "power" else r"([0-9.]+) (µg|mg|g|kg) \["
m = re.search(pat, line)
print(float(m.group(1)) * scale[m.group(2)] if m else "")
PY
}

# 1. open the console
START=$(date +%s.%N)
tmux new-session -d -s "$SESSION" -x 160 -y 48 \
    "cd '$ROOT' && .venv/bin/wattlab --sample; echo \"wattlab exited rc=\$?\"; sleep 60"
wait_for "wattlab +lab default" 10
echo "first frame after $(python3 -c "print(f'{$(date +%s.%N) - $START:.2f}')") s"
capture "first-frame"
wait_for "orin-sim .*Jetson AGX Orin" 10
wait_for "h100-sim .*H100" 10
capture "fleet-opened"

# 2. --sample: every device samples once connected (a host still probing shows "connecting", so
# nothing starts on its placeholder); power must move and GWP grow on the simulated devices
wait_for "3 devices · 3 jobs" 15
echo "all sampling after $(python3 -c "print(f'{$(date +%s.%N) - $START:.2f}')") s"
wait_for "orin-sim .*sampling .*[0-9] (µg|mg|g) \[" 15
wait_for "h100-sim .*sampling .*[0-9] (µg|mg|g) \[" 15
sleep 1
capture "sampling-all"
for host in orin-sim h100-sim; do
    # Idle sim power moves by a fraction of a watt: read it five times, a second apart.
    g1=$(number gwp "$(row "$host")")
    powers=()
    for _ in 1 2 3 4 5; do
        powers+=("$(number power "$(row "$host")")")
        sleep 1
    done
    g2=$(number gwp "$(row "$host")")
    [ -n "${powers[0]}" ] || fail "$host shows no power"
    distinct=$(printf '%s\n' "${powers[@]}" | sort -u | wc -l)
    [ "$distinct" -ge 2 ] || fail "$host power did not move (${powers[*]} W)"
    python3 -c "import sys; sys.exit(0 if $g2 > $g1 else 1)" || fail "$host GWP did not grow ($g1 -> $g2 g)"
    echo "$host: power ${powers[*]} W; GWP $g1 -> $g2 g"
done
row local | grep -q "sampling" || fail "local is not sampling"
capture "power-moving"
keys "?"
wait_for "Keys · fleet" 5
screen | grep -Eq "a +Sample all" || fail "the help screen does not list the fleet's keys"
capture "help"
keys Escape
wait_for "space Mark" 5

# 3. open the simulated Orin, replace its sampling job by SingleStream
keys /
keys o r i n Enter
wait_for "1 of 3 devices" 5
keys Enter
wait_for "Jetson AGX Orin 64GB \(sim\) +on +orin-sim" 5
capture "orin-device"
keys x
wait_for "orin-sim/sim:jetson-agx-orin-64gb +[0-9]+ devices · 2 jobs" 15
wait_for "· +idle +·" 15
keys j
wait_for "Start a job on orin-sim" 5
capture "start-dialog"
keys Down Enter   # singlestream-1024: long enough to watch and stop
wait_for "· +running +·" 15
wait_for "queries +[1-9]" 15
sleep 2
capture "singlestream-running"
screen | grep -Eq "latency p50 +[0-9.]+ (ms|s)" || fail "no latency shown for the SingleStream job"

# 4. stop it, go back, quit (the other jobs keep running: the dialog must say so)
keys x
wait_for "· +idle +·" 15
capture "singlestream-stopped"
keys Escape
wait_for "space Mark" 5
keys Escape   # clear the filter
keys q
wait_for "Quit the console\?" 5
screen | grep -q "keep running on the devices" || fail "quit dialog does not say jobs keep running"
capture "quit-dialog"
keys y
wait_for "wattlab exited rc=0" 10
screen | grep -q "Re-attach: run .wattlab. again" || fail "no re-attach hint after quitting"
capture "quit"
echo "demo passed; screens in $CAPTURES"
