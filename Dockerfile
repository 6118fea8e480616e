# The registry's container image, in two stages: a Rust toolchain builds the
# binary with the extensions named by EXTENSIONS, and a slim Debian image runs
# it as a non-root user.
#
#   docker build -t registry .
#   docker build -t registry:foo --build-arg EXTENSIONS="ext-foo" .
#
# EXTENSIONS is a space-separated list of Cargo features of the registry
# crate: `ext-<name>` per extension, or `full` for all of them. Empty, the
# default, links none.
#
# The end-to-end test tests/tests/image.rs builds the runtime stage from this
# file, everything from its last FROM line on. It replaces only that FROM line
# and the COPY --from=builder line, so keep both on one line each.

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
ARG EXTENSIONS=""
RUN cargo build --release --locked -p registry --features "$EXTENSIONS" \
    && install -D target/release/registry /out/registry

FROM debian:bookworm-slim AS runtime
# A numeric user, so that a runtime can tell without /etc/passwd that the
# image does not run as root (Kubernetes' runAsNonRoot needs that).
RUN groupadd --system --gid 10001 registry \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin registry \
    && mkdir -p /var/lib/registry \
    && chown 10001:10001 /var/lib/registry
COPY --from=builder /out/registry /usr/local/bin/registry
COPY docker/config.yml /etc/registry/config.yml
ENV REGISTRY_CONFIG=/etc/registry/config.yml
USER 10001:10001
EXPOSE 5000
VOLUME ["/var/lib/registry"]
# The slim image has no HTTP client, so bash's /dev/tcp sends GET /v2/ to the
# port of REGISTRY_HTTP_ADDR (5000 by default) on 127.0.0.1 and checks for a
# 200 status. A registry bound to one address other than loopback or the
# wildcard address therefore reports unhealthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "address=${REGISTRY_HTTP_ADDR:-0.0.0.0:5000}; exec 3<>/dev/tcp/127.0.0.1/${address##*:} && printf 'GET /v2/ HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && read -r version status reason <&3 && [ \"$status\" = 200 ]"]
ENTRYPOINT ["/usr/local/bin/registry"]
CMD ["serve"]
