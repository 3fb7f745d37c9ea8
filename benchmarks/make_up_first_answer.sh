#!/usr/bin/env bash
# Time README's main command on a fresh clone: `make up` until the first chat answer through the
# gateway, then stop it with Ctrl-C and check nothing is left running.
#   benchmarks/make_up_first_answer.sh [--cold]     (--cold: no pip cache, so llama.cpp compiles)
set -u
repo=$(cd "$(dirname "$0")/.." && pwd)
clone=$(mktemp -d /tmp/flotilla-fresh-XXXX)
git clone -q "$repo" "$clone" && cd "$clone" || exit 1
[ "${1:-}" = "--cold" ] && export PIP_NO_CACHE_DIR=1
start=$(date +%s.%N)
setsid make up > "$clone/make-up.log" 2>&1 &
pid=$!
until curl -sf http://127.0.0.1:8000/v1/chat/completions -H "Authorization: Bearer local-staff-token" \
      -H "Content-Type: application/json" \
      -d '{"model":"chat","messages":[{"role":"user","content":"Hi"}],"max_tokens":8}' > "$clone/answer.json"; do
  kill -0 $pid 2>/dev/null || { echo "make up exited early; see $clone/make-up.log"; exit 1; }
  sleep 0.5
done
echo "first answer after $(echo "$(date +%s.%N) - $start" | bc) s: $(head -c 200 "$clone/answer.json")"
kill -INT -- -$pid
for _ in $(seq 1 30); do kill -0 $pid 2>/dev/null || break; sleep 1; done
if pgrep -f "$clone" > /dev/null; then echo "processes left behind:"; pgrep -af "$clone"; exit 1; fi
echo "stopped cleanly; clone in $clone"
