# args: B=from-cli
ARG A=meta-a
FROM busybox
ARG A
ARG B=default-b
ARG C=${A}-${B}
ENV D=$C E="quoted value" F='single $A'
ARG D=arg-after-env
RUN echo $A $B $C $D
ENV A=env-a
RUN echo $A
USER ${B}
EXPOSE 80 ${B:+443/tcp} 8000-8001/udp
VOLUME ["/data", "/$A"]
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s CMD wget -q localhost || exit 1
SHELL ["/bin/bash", "-c"]
ENTRYPOINT echo hi
