# Tycho operator image: a static (musl) binary on an empty base, running as a non-root user.
#
#   docker build -t tycho:dev .                 # or, straight into minikube:
#   minikube image build -t tycho:dev .
#
# Stage 1 builds with the Rust image's own toolchain; stage 2 holds only the binary and CA certificates.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
# musl-tools gives the C compiler that ring (TLS) needs for a static build.
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The whole workspace (see .dockerignore): the binary embeds templates/ at compile time, and the
# workspace's members (crates/, emulator/) must be present for cargo to read the manifest.
COPY . .
RUN set -eu; \
    target="$(uname -m)-unknown-linux-musl"; \
    rustup target add "$target"; \
    # Without the default feature `dev`: the operator never runs the Kubernetes API emulator.
    cargo build --locked --release --no-default-features --bin tycho --target "$target"; \
    cp "target/$target/release/tycho" /tycho; \
    /tycho version

FROM scratch
# CA bundle for clusters reached through a public endpoint; in a pod the ServiceAccount's CA is used.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /tycho /tycho
# The "nonroot" user of distroless images; the chart runs it with a read-only root filesystem and an
# emptyDir on /tmp.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/tycho"]
CMD ["controller"]
