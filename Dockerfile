# The `flashcart` engine binary in a small image: built in the Rust image, run as a non-root
# user in Debian slim. Build from the repository root:
#   docker build -t flashcart .
# Configure with FLASHCART_SECTION__KEY variables (see deploy/compose.yaml, deploy/k8s/).

FROM rust:1.94-bookworm AS build
# librdkafka (rdkafka-sys) is compiled from source: it needs cmake.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p flashcart-gateway --bin flashcart \
    && cp target/release/flashcart /usr/local/bin/flashcart

FROM debian:bookworm-slim
# curl for the health check; ca-certificates for TLS to managed services.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/flashcart --create-home flashcart
COPY --from=build /usr/local/bin/flashcart /usr/local/bin/flashcart
USER flashcart
WORKDIR /var/lib/flashcart
# All interfaces inside the container (the default is loopback); data (the embedded store,
# the search index) in the home directory, which a volume should back.
ENV FLASHCART_SERVER__LISTEN=0.0.0.0:8080 \
    FLASHCART_STORE__DATA_DIR=/var/lib/flashcart
# 8080: the API, /metrics and the health checks; 7101: the node channel of a cluster.
EXPOSE 8080 7101
HEALTHCHECK --interval=10s --timeout=2s --start-period=30s --retries=3 \
    CMD ["curl", "-fsS", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/usr/local/bin/flashcart"]
CMD ["serve"]
