# preStop hook of a Python-based engine (vLLM, SGLang, TGI, Flotilla's sim): let in-flight requests
# finish before Kubernetes sends SIGTERM. Usage: python3 -c "$(cat drain.py)" PORT DELAY GAUGE...
# First wait DELAY seconds, so that the gateway (which re-resolves the model's headless Service)
# stops sending new requests to this terminating pod; then poll the engine's own /metrics until
# the named gauges (requests running and waiting) read 0 twice in a row. The pod's
# terminationGracePeriodSeconds bounds the whole wait; an engine that no longer answers has
# nothing left to drain.
import sys
import time
import urllib.request


def load(port, gauges):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port, timeout=5) as response:
            text = response.read().decode("utf-8", "replace")
    except Exception:
        return 0.0
    total = 0.0
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name not in gauges:
            continue
        rest = line[len(name):]
        if rest.startswith("{"):
            rest = rest[rest.rindex("}") + 1:]
        try:
            total += float(rest.split()[0])
        except (IndexError, ValueError):
            continue
    return total


def main(argv):
    port, delay, gauges = argv[1], float(argv[2]), set(argv[3:])
    time.sleep(delay)
    idle = 0
    while idle < 2:
        idle = idle + 1 if load(port, gauges) == 0 else 0
        time.sleep(1)
    return 0


sys.exit(main(sys.argv))
