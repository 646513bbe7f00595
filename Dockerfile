# The nsagent image: nsagent and nsagent-ctl on Debian 12, with iproute2 for looking around.
#   docker build -t nsagent .        (docker compose up builds it as nsagent:latest)
# CI cannot pull these base images; scripts/compose-test.sh makes an equivalent image from
# the release binaries instead (see README).
FROM rust:1-bookworm AS build
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends protobuf-compiler libprotobuf-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bins \
    && install -m 0755 target/release/nsagent target/release/nsagent-ctl /usr/local/bin/

FROM debian:bookworm-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iproute2 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/nsagent /usr/local/bin/nsagent-ctl /usr/local/bin/
CMD ["nsagent"]
