# The mesh as one image, for a Docker that can pull images: a builder stage compiles every
# binary, the runtime stage is a slim Debian with them. (No registry is reachable on the
# machines this project is developed on: there `docker/build-image.sh` builds the same runtime
# stage from a debootstrap base and binaries built on the host.)
#
#   docker build -t xdr-mesh:dev .
#   docker-compose up

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --workspace --bins \
 && mkdir /out \
 && cp target/release/xdr-collector target/release/xdr-enrichment target/release/xdr-threatintel \
       target/release/xdr-playbook target/release/xdr-gateway target/release/xdrctl \
       target/release/usergate-emulator /out/

FROM debian:bookworm-slim AS runtime
COPY --from=builder /out/ /usr/local/bin/
COPY --from=builder /src/services/threatintel/feeds/Demo.json /usr/share/xdr/feeds/
# --- runtime (shared with docker/runtime.Dockerfile) ---
ENV XDR_TLS_DIR=/etc/xdr/certs \
    XDR_LOG_FORMAT=json
LABEL org.xdr-mesh.image="runtime"
VOLUME ["/var/lib/xdr"]
WORKDIR /var/lib/xdr
EXPOSE 7201 7202 7203 7204 8080 4040 4317
CMD ["xdrctl", "--help"]
