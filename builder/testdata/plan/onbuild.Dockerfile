FROM busybox AS base
ONBUILD RUN echo triggered
ONBUILD ENV FROM_TRIGGER=1
CMD ["sh"]

FROM base
ENTRYPOINT ["/bin/sh", "-c"]
RUN echo after
