"""Run llama.cpp's C++ server from the prebuilt `xllamacpp` wheel, with llama-server's flags.

    python -m flotilla.engines.llamacpp_serve --host 127.0.0.1 --port 8080 --model m.gguf --parallel 4 --metrics

xllamacpp embeds llama-server (its HTTP server, slots, continuous batching, /metrics) in a Python
extension; this module maps the llama-server flags Flotilla uses to its parameters, serves until
SIGTERM or SIGINT, and rejects any other flag by name (so a flag that works in the chart's
llama-server image but not here is said, never ignored).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from typing import Any


def _set(path: str, convert: Callable[[str], Any] = str) -> Callable[[Any, str], None]:
    def apply(params: Any, value: str) -> None:
        *parents, leaf = path.split(".")
        target = params
        for name in parents:
            target = getattr(target, name)
        setattr(target, leaf, convert(value))

    return apply


def _threads(params: Any, value: str) -> None:
    # llama-server: --threads-batch defaults to --threads (prompt processing uses the same cores).
    params.cpuparams.n_threads = int(value)
    params.cpuparams_batch.n_threads = int(value)


# llama-server flag -> (takes a value, how to apply it). Long and short names as llama-server spells them.
_VALUE_FLAGS: dict[str, Callable[[Any, str], None]] = {
    "--host": lambda p, v: setattr(p, "hostnames", [v]),
    "--port": _set("port", int),
    "--alias": lambda p, v: setattr(p, "model_alias", {v}),
    "--model": _set("model.path"),
    "--ctx-size": _set("n_ctx", int),
    "--parallel": _set("n_parallel", int),
    "--threads": _threads,
    "--threads-batch": lambda p, v: setattr(p.cpuparams_batch, "n_threads", int(v)),
    "--chat-template": _set("chat_template"),
    "--batch-size": _set("n_batch", int),
    "--ubatch-size": _set("n_ubatch", int),
    "--n-predict": _set("n_predict", int),
    "--n-gpu-layers": _set("n_gpu_layers", int),
    "--seed": _set("sampling.seed", int),
    "--temp": _set("sampling.temp", float),
    "--timeout": lambda p, v: (setattr(p, "timeout_read", int(v)), setattr(p, "timeout_write", int(v))),
}
_SWITCHES: dict[str, Callable[[Any], None]] = {
    "--metrics": lambda p: setattr(p, "endpoint_metrics", True),
    "--slots": lambda p: setattr(p, "endpoint_slots", True),
    "--embeddings": lambda p: setattr(p, "embedding", True),
    "--jinja": lambda p: setattr(p, "use_jinja", True),
    "--no-warmup": lambda p: setattr(p, "warmup", False),
    "--cont-batching": lambda p: setattr(p, "cont_batching", True),
    "--no-cont-batching": lambda p: setattr(p, "cont_batching", False),
    "--kv-unified": lambda p: setattr(p, "kv_unified", True),
}
_ALIASES = {"-m": "--model", "-c": "--ctx-size", "-np": "--parallel", "-t": "--threads", "-tb": "--threads-batch",
            "-b": "--batch-size", "-ub": "--ubatch-size", "-n": "--n-predict", "-ngl": "--n-gpu-layers",
            "-s": "--seed", "--embedding": "--embeddings", "-cb": "--cont-batching", "-nocb": "--no-cont-batching",
            "-kvu": "--kv-unified", "-a": "--alias", "-to": "--timeout"}


class UnsupportedFlag(ValueError):
    pass


def supported_flags() -> list[str]:
    return sorted([*_VALUE_FLAGS, *_SWITCHES])


def apply_flags(params: Any, argv: list[str]) -> None:
    """Set xllamacpp CommonParams from llama-server flags (`--flag value` or `--flag=value`)."""
    i = 0
    while i < len(argv):
        token = argv[i]
        name, eq, inline = token.partition("=")
        name = _ALIASES.get(name, name)
        if name in _SWITCHES and not eq:
            _SWITCHES[name](params)
            i += 1
            continue
        if name in _VALUE_FLAGS:
            if eq:
                value = inline
                i += 1
            elif i + 1 < len(argv):
                value = argv[i + 1]
                i += 2
            else:
                raise UnsupportedFlag(f"{name} needs a value")
            try:
                _VALUE_FLAGS[name](params, value)
            except ValueError:
                raise UnsupportedFlag(f"{name}: {value!r} is not a valid value") from None
            continue
        raise UnsupportedFlag(
            f"llama-server flag {token!r} is not supported by the local llama.cpp launcher "
            f"(the chart's llama-server image takes it); supported here: {', '.join(supported_flags())}"
        )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        print("flags: " + " ".join(supported_flags()))
        return 0
    try:
        import xllamacpp
    except ImportError:
        print("llamacpp_serve: xllamacpp is not installed: pip install xllamacpp", file=sys.stderr)
        return 2
    params = xllamacpp.CommonParams()
    params.endpoint_metrics = False
    try:
        apply_flags(params, argv)
    except UnsupportedFlag as exc:
        print(f"llamacpp_serve: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server = xllamacpp.Server(params)  # loads the model, then listens (its own threads)
    except Exception as exc:  # a bad model file or a port in use: say so and exit non-zero
        print(f"llamacpp_serve: could not start llama.cpp's server: {exc}", file=sys.stderr)
        return 1
    print(f"llamacpp_serve: serving on {server.listening_address}", flush=True)
    stop.wait()
    del server  # stops the server's loop and frees the model
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
