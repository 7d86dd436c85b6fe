# syntax=docker/dockerfile:1
# supagate: multi-stage build. The builder compiles dependencies in their own layer (stub
# sources), so editing src/ rebuilds only the crate; the runtime image holds the binary alone
# (its config/ defaults are compiled in), runs as a non-root user, and needs nothing else (TLS
# roots are compiled in).
#
#   docker build -t supagate .
#   docker run --rm -p 8080:8080 --env-file .env supagate

FROM rust:1-bookworm AS builder
WORKDIR /build
COPY Cargo.toml Cargo.lock ./
# The input derive is a workspace member the manifest names; it is small and changes rarely.
COPY derive derive
# Every target named in Cargo.toml must exist for cargo to read the manifest; stubs suffice
# for the dependency layer.
RUN mkdir -p src bench/criterion \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && for b in stripe auth query middleware api_keys client_ip; do echo 'fn main() {}' > "bench/criterion/$b.rs"; done \
 && cargo build --release --locked --bin supagate \
 && rm -rf src target/release/supagate target/release/deps/supagate-* target/release/.fingerprint/supagate-*
COPY src src
# /docs's HTML, script and stylesheet, and config/*.toml (the defaults), are compiled into
# the binary (include_str!).
COPY assets assets
COPY config config
RUN cargo build --release --locked --bin supagate \
 && strip target/release/supagate

FROM debian:bookworm-slim AS runtime
# curl only for the HEALTHCHECK below; drop it (and the HEALTHCHECK) if your orchestrator
# probes over HTTP itself (Kubernetes httpGet on /health and /ready).
# Unpinned on purpose: bookworm's curl gets security updates, and a pinned version disappears
# from the archive when it does.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin supagate
WORKDIR /app
COPY --from=builder /build/target/release/supagate /app/supagate
# The binary carries config/*.toml compiled in; mount a directory at /app/config (the working
# directory's ./config) to overlay it.
ENV APP_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    RUST_LOG=info
USER 10001
EXPOSE 8080
# SIGTERM (docker stop) drains in-flight requests for up to server.shutdown_timeout_secs (30);
# give `docker stop -t` / terminationGracePeriodSeconds a little more than that.
STOPSIGNAL SIGTERM
# Liveness only: /health makes no upstream call. Use /ready (checks Supabase) for routing.
HEALTHCHECK --interval=15s --timeout=3s --start-period=5s --retries=3 \
  CMD ["sh", "-c", "curl -fsS \"http://127.0.0.1:${PORT}/health\" >/dev/null || exit 1"]
ENTRYPOINT ["/app/supagate"]
CMD ["serve"]
