# The image docker-compose runs here: `docker/build-image.sh` builds it from a debootstrap
# base and the binaries cargo built on the host. Below the COPY it is the runtime stage of the
# top-level Dockerfile, line for line (a test compares them).
ARG BASE=xdr-base:bookworm
FROM ${BASE}
COPY bin/ /usr/local/bin/
COPY feeds/ /usr/share/xdr/feeds/
# --- runtime (shared with ../Dockerfile) ---
ENV XDR_TLS_DIR=/etc/xdr/certs \
    XDR_LOG_FORMAT=json
LABEL org.xdr-mesh.image="runtime"
VOLUME ["/var/lib/xdr"]
WORKDIR /var/lib/xdr
EXPOSE 7201 7202 7203 7204 8080 4040 4317
CMD ["xdrctl", "--help"]
