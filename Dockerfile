# Builds the shardline-node image (the operator image is added with the
# operator). Usage: docker build -t shardline-node .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p shardline-node

FROM debian:bookworm-slim
RUN useradd --system --uid 999 --home /data redis && mkdir -p /data && chown redis /data
COPY --from=build /src/target/release/shardline-node /usr/local/bin/shardline-node
USER redis
WORKDIR /data
EXPOSE 6379 16379
ENTRYPOINT ["shardline-node"]
CMD ["--bind", "0.0.0.0", "--protected-mode", "no", "--dir", "/data"]
