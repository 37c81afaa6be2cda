# target: test
FROM busybox AS build
RUN echo build
FROM build AS test
RUN --mount=type=cache,target=/root/.cache,id=gocache,sharing=locked --mount=type=bind,from=build,source=/etc,target=/mnt --mount=type=tmpfs,target=/tmp --mount=type=secret,id=tok,env=TOKEN --network=none echo test
FROM build AS release
RUN echo release
