# Serin's image: `serin controller` and `serin loadtester` from one binary.
#
#   docker build -t ghcr.io/serin-dev/serin:0.1.0 .
#
# Build stage: rustls uses aws-lc-rs, whose aws-lc-sys builds AWS-LC from source with the C
# compiler alone on x86_64/aarch64 Linux (pre-generated bindings; no cmake, clang or Go). git2
# builds its bundled libgit2 and libssh2 and links the system OpenSSL and zlib, found through
# pkg-config. The allocator, jemalloc (tikv-jemalloc-sys), is built from source with the C
# compiler and make, both in the rust image.
FROM rust:1.89-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libssl-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin serin \
 && cp target/release/serin /serin

# Runtime: glibc, OpenSSL 3 and zlib (what the binary links), CA certificates for Git over
# HTTPS, alert webhooks and Prometheus over TLS; no shell tools are needed. Runs as 65532.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 serin \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin serin
COPY --from=build /serin /usr/local/bin/serin
USER 65532:65532
ENV HOME=/tmp
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/serin"]
CMD ["controller"]
