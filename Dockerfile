# syntax=docker/dockerfile:1
#
# streamd: one static binary on a distroless, non-root base.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t streamd .
#   docker run --rm -p 9464:9464 streamd                       # replays the sample data
#   docker run --rm -v $PWD/my.yaml:/etc/streamd/my.yaml streamd run --config /etc/streamd/my.yaml
#
# AWS settings come from the SDK's default chain (AWS_REGION, the ECS task
# role, AWS_ENDPOINT_URL_*); the ECS stopTimeout (30s) exceeds the default
# shutdown_timeout (25s), so SIGTERM drains and commits before the kill.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Dependencies first, so that source edits reuse the cached module layer.
COPY go.mod go.sum ./
RUN go mod download && go mod verify
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/streamd ./cmd/streamd
# The binary must run by itself; this also fails the build on a broken link.
RUN /out/streamd version

FROM gcr.io/distroless/static-debian12:nonroot
# distroless/static carries the CA certificates (/etc/ssl/certs) and tzdata.
COPY --from=build /out/streamd /streamd
COPY configs/ /etc/streamd/
# The example configs read their sample data and listen address from these.
ENV STREAMD_DATA_DIR=/etc/streamd/data \
    STREAMD_HTTP_LISTEN=:9464
# Relative state, output and dead-letter paths (./var/...) land in the
# non-root user's home; mount a volume there to keep them.
WORKDIR /home/nonroot
USER nonroot:nonroot
EXPOSE 9464
ENTRYPOINT ["/streamd"]
CMD ["run", "--config", "/etc/streamd/local.yaml"]
