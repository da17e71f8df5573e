# syntax=docker/dockerfile:1
# The talos-manager service as a container image: one static-ish binary on Debian slim.
#   docker build -t talos-manager .
#   docker run -p 3000:3000 -v talos-manager-data:/data talos-manager
# See docs/deployment.md (and docker-compose.yml for PostgreSQL).

# Build stage: the Rust toolchain the workspace declares (rust-version in Cargo.toml).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target/ between builds; the binary is copied out of the
# cached target/ because a cache mount is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --release -p talos-manager-http --bin talos-manager \
    && install -D -m 0755 target/release/talos-manager /out/talos-manager \
    && install -d -m 0750 /out/data

# Runtime stage: glibc (the build stage's Debian release), CA certificates for Hetzner, the
# Image Factory and PostgreSQL over TLS, and nothing else (no curl, no compiler).
FROM debian:bookworm-slim
# ca-certificates is left unpinned on purpose: Debian replaces it in place with security updates.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin talos-manager
COPY --from=build /out/talos-manager /usr/local/bin/talos-manager
COPY --from=build --chown=10001:10001 /out/data /data

USER 10001:10001
WORKDIR /data
# SQLite database and its generated encryption key (when DATABASE_URL is not PostgreSQL).
VOLUME ["/data"]
ENV TALOS_MANAGER_DATA_DIR=/data \
    PORT=3000 \
    LOG_FORMAT=json
EXPOSE 3000

# GET /healthz through bash's /dev/tcp, so the image needs no HTTP client: healthy when the
# service answers 200 (it answers 503 while its database does not).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${PORT:-3000} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]

ENTRYPOINT ["/usr/local/bin/talos-manager"]
CMD ["serve"]
