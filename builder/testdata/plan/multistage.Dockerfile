# args: VERSION=2.0 UNUSED=1
# syntax=docker/dockerfile:1
ARG BASE=busybox
ARG VERSION=1.0
FROM ${BASE} AS build
ARG VERSION
ARG TARGETARCH
ENV APP=/app
WORKDIR $APP
COPY --chown=1000:1000 src/ ./src/
RUN echo building $VERSION for $TARGETARCH > /out.txt

FROM busybox AS unused
RUN echo this stage is skipped

FROM scratch
COPY --from=build /out.txt /
LABEL version=$VERSION
CMD ["/bin/app"]
