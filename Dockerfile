# syntax=docker/dockerfile:1
#
# Release image of egx-pipeline: a Rust build stage, then a small Debian runtime with the
# binary, its shared libraries (OpenSSL, zlib), CA certificates and config/ at /etc/egx,
# running as an unprivileged user.
#
#   docker build -t egx-pipeline .
#   docker run --rm egx-pipeline                      # run --once on the embedded default
#   docker run --rm egx-pipeline --config /etc/egx/dev.toml check-config
#
# docker-compose.dev.yml builds it for its optional `pipeline` service (profile
# `pipeline`). The admin endpoint (/metrics, /healthz, /readyz) listens on 127.0.0.1:9898
# unless told otherwise; to reach it from outside the container set
# EGX__ADMIN__LISTEN=0.0.0.0:9898 and publish the port (on a trusted network only: the
# endpoint has no authentication).

FROM rust:1.95-bookworm AS builder

# rdkafka-sys builds librdkafka from source with its ./configure script and make (C and
# C++ compilers, perl, pkg-config), against the system OpenSSL (feature `ssl`) and zlib;
# aws-lc-sys (rustls) builds with cmake. The rust image has most of these already; they
# are listed so the build does not depend on that.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        build-essential cmake make perl pkg-config libssl-dev zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .

# --locked: build exactly the dependency versions in Cargo.lock. The cache mounts keep
# the crate downloads and compiled dependencies between builds (BuildKit); the binary is
# copied out of the cached target directory.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p egx-pipeline \
    && install -m 0755 target/release/egx-pipeline /usr/local/bin/egx-pipeline

FROM debian:bookworm-slim AS runtime

RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
    && rm -rf /var/lib/apt/lists/*

# An unprivileged user with a writable working directory: the embedded default writes
# objects to ./egx-data (sink.kind = "local").
RUN groupadd --system --gid 10001 egx \
    && useradd --system --uid 10001 --gid egx --home-dir /var/lib/egx --create-home \
        --shell /usr/sbin/nologin egx

COPY --from=builder /usr/local/bin/egx-pipeline /usr/local/bin/egx-pipeline
COPY config/ /etc/egx/

WORKDIR /var/lib/egx
USER 10001:10001

# The admin endpoint (see above).
EXPOSE 9898

ENTRYPOINT ["egx-pipeline"]
CMD ["run", "--once"]
