# The portcullis image: `make docker-build` (IMG=... to name it), then push
# it and point config/default at it with
#   cd config/default && kustomize edit set image ghcr.io/portcullis-dev/portcullis=$IMG
# The tests do not use it: nothing here needs Docker.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/portcullis . && \
    ln -s portcullis /out/manager

FROM gcr.io/distroless/static:nonroot
# /portcullis, and /manager -> /portcullis: started as /manager, as
# Gatekeeper's chart runs its image (command: [/manager], Gatekeeper's
# flags as args), it is `portcullis manager --gatekeeper-defaults`.
COPY --from=build /out/ /
# Numeric, so that the kubelet can check runAsNonRoot.
USER 65532:65532
ENTRYPOINT ["/portcullis"]
