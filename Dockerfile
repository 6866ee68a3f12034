# The campaign-elt loader: a static-enough release binary on a slim Debian base.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
COPY views views
RUN cargo build --release --locked --bin campaign-elt

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /home/loader loader
COPY --from=build /src/target/release/campaign-elt /usr/local/bin/campaign-elt
USER loader
WORKDIR /home/loader
ENTRYPOINT ["campaign-elt"]
CMD ["--help"]
