# preStop hook of llama.cpp's server image (no Python there; curl and awk are): the same drain as
# drain.py. Usage: sh -c "$(cat drain.sh)" drain PORT DELAY GAUGE...
port=$1; delay=$2; shift 2
sleep "$delay"
idle=0
while [ "$idle" -lt 2 ]; do
  busy=$(curl -sf --max-time 5 "http://127.0.0.1:$port/metrics" | awk -v names="$*" '
    BEGIN { n = split(names, list, " "); for (i = 1; i <= n; i++) wanted[list[i]] = 1 }
    /^#/ { next }
    { name = $1; sub(/\{.*/, "", name); if (name in wanted) total += $2 }
    END { print (total > 0) ? 1 : 0 }')
  if [ "$busy" = "1" ]; then idle=0; else idle=$((idle + 1)); fi
  sleep 1
done
