# escape=`
FROM scratch
ENV P=C:\path `
    Q=x
COPY a b /dir/
ADD --chmod=0755 --checksum=sha256:0000000000000000000000000000000000000000000000000000000000000000 http://127.0.0.1:1/f.tgz /dl/
MAINTAINER someone
