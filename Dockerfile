# herald as an image to copy from, the pattern tini and others use. In a runner image's Dockerfile:
#
#   COPY --from=registry.gitlab.com/<group>/herald:0.2.0 /herald /usr/local/bin/herald
#
# FROM scratch: the static musl binary is all there is; no shell, no libc, nothing to patch.
# herald's pipeline builds it for linux/amd64 and linux/arm64 from the release archives, which
# scripts/image-context.sh unpacks into image/<arch>/herald (TARGETARCH: amd64 or arm64).
FROM scratch
ARG TARGETARCH
ARG VERSION=unknown
LABEL org.opencontainers.image.title="herald" \
      org.opencontainers.image.description="Supervises GitLab CI job steps like an init process and publishes them to the merge request" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0"
COPY image/${TARGETARCH}/herald /herald
ENTRYPOINT ["/herald"]
