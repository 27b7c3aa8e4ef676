# syntax=docker/dockerfile:1
# sipd image: build with the Rust toolchain, run on a slim Debian as a non-root user.
#
#   docker build -t sipd .
#   docker run -p 8080:8080 -e SIPD_API_LISTEN=0.0.0.0:8080 sipd

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS builder
WORKDIR /src
# Everything the build reads: the workspace, its crates, the migrations embedded at compile
# time and config/sipd.toml (the built-in defaults). .dockerignore keeps the rest out.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release -p sipd \
    && install -m 0755 target/release/sipd /usr/local/bin/sipd

FROM debian:${DEBIAN_RELEASE}-slim
# curl serves the compose healthcheck (GET /health); ca-certificates for TLS peers.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/sipd --create-home sipd \
    && install -d -o sipd -g sipd -m 0700 /var/lib/sipd/data
COPY --from=builder /usr/local/bin/sipd /usr/local/bin/sipd

USER sipd
WORKDIR /var/lib/sipd
# No config file in the image: built-in defaults, overridden here and by SIPD_* at run time.
# The data folder holds the generated secret key (and the SQLite database when used): keep it
# on a volume, or set SIPD_SECURITY_SECRET_KEY.
ENV SIPD_DATA_DIR=/var/lib/sipd/data \
    SIPD_DATABASE_URL=sqlite:///var/lib/sipd/data/sipd.db
VOLUME ["/var/lib/sipd/data"]
# REST API; SIP over UDP and TCP, TLS, WSS. Without certificate files (SIPD_SIP_TLS_CERTIFICATE,
# SIPD_SIP_TLS_PRIVATE_KEY) TLS and WSS use a self-signed certificate.
EXPOSE 8080 5060/udp 5060/tcp 5061/tcp 7443/tcp
ENTRYPOINT ["sipd"]
CMD ["serve"]
