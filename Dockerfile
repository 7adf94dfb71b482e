# syntax=docker/dockerfile:1
# The ruaflow image: one static-ish binary on a slim Debian, run as a non-root user.
#
#   docker build -t ruaflow .            # docker-compose.yml builds it as ruaflow:local
#   docker run --rm ruaflow --help
#
# Stage 1 builds the release binary. librdkafka is compiled from the sources bundled in
# rdkafka-sys (make, a C compiler and zlib headers, all in the rust image) and SQLite from
# rusqlite's; the cache mounts keep the registry and target/ between builds.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin ruaflow \
    && install -m 0755 target/release/ruaflow /usr/local/bin/ruaflow

# Stage 2: the runtime. The binary needs only libc, libgcc and zlib; curl is for the
# health checks (GET /healthz), ca-certificates for anything an operator adds.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/ruaflow --create-home ruaflow
COPY --from=build /usr/local/bin/ruaflow /usr/local/bin/ruaflow
COPY ruaflow.example.toml /etc/ruaflow/ruaflow.example.toml
USER ruaflow
WORKDIR /var/lib/ruaflow
ENTRYPOINT ["ruaflow"]
CMD ["--help"]
