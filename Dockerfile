# Two stages: build the one `mole` binary, then a slim runtime with the model.
#   docker run -p 8080:8080 -v mole-data:/app/mole-data <image>     (embedded: nothing else needed)
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin mole

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 mole \
 && mkdir -p /app/mole-data && chown mole /app/mole-data
WORKDIR /app
COPY --from=build /src/target/release/mole /usr/local/bin/mole
COPY models/ /app/models/
USER mole
ENV MOLE_MODEL=/app/models/mole-v2.card.json MOLE_LOG_FORMAT=json PORT=8080
EXPOSE 8080
# Without DATABASE_URL and REDIS_URL: the embedded mode, its cases in the volume. docker-compose.yml
# and Heroku's Procfile name `mole serve` and `mole worker` (the scaled mode) instead.
VOLUME /app/mole-data
CMD ["mole"]
