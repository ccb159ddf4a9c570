# Two stages: build the one `mole` binary, then a slim runtime with the model.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin mole

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 mole
WORKDIR /app
COPY --from=build /src/target/release/mole /usr/local/bin/mole
COPY models/ /app/models/
USER mole
ENV MOLE_MODEL=/app/models/mole-v2.card.json MOLE_LOG_FORMAT=json PORT=8080
EXPOSE 8080
CMD ["mole", "serve"]
