FROM busybox
ARG APP=app
COPY <<EOF /etc/app.conf
name="${APP}"
path='$HOME'
EOF
COPY <<-"EOF" /etc/raw.conf
	name="${APP}"
	EOF
RUN <<EOF
echo "hello ${APP}"
echo second
EOF
RUN <<EOF
#!/bin/sh
echo script
EOF
RUN cat <<EOF > /x
line $APP
EOF
