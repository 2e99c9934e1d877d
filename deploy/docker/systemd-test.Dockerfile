# deploy/systemd's units under a real systemd as PID 1, installed as docs/deploy.md does (steps 1-4 and 6),
# for deploy/test_container.py (make test-container). Build context: deploy/. FROM the clinicall image,
# which has /opt/clinicall and its venv; PostgreSQL and Redis from Debian, as on a Debian 12 server.
ARG CLINICALL_IMAGE=clinicall:latest
FROM ${CLINICALL_IMAGE}
USER root
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      systemd systemd-sysv dbus postgresql redis-server alsa-utils \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/clinicall-speaker \
 && /opt/clinicall-speaker/bin/pip install --no-cache-dir --disable-pip-version-check /opt/clinicall/speaker \
 && useradd --system --no-create-home --shell /usr/sbin/nologin --groups audio clinicall-speaker \
 && install -d -m 0750 -o root -g clinicall /etc/clinicall
# Debian's redis-server unit has PrivateUsers=yes, which fails in this container ("Failed to set up user namespacing").
RUN install -d /etc/systemd/system/redis-server.service.d \
 && printf '[Service]\nPrivateUsers=no\n' > /etc/systemd/system/redis-server.service.d/container.conf
COPY systemd/ /etc/systemd/system/
COPY clinicall.toml instance-8081.env instance-8082.env /etc/clinicall/
COPY clinicall.env.example /etc/clinicall/clinicall.env
COPY clinicall-ctl /usr/local/sbin/clinicall-ctl
RUN chown root:clinicall /etc/clinicall/* && chmod 0640 /etc/clinicall/* \
 && chmod 0644 /etc/systemd/system/clinicall*
WORKDIR /
ENV container=docker
HEALTHCHECK NONE
STOPSIGNAL SIGRTMIN+3
# On a host systemd makes / a shared mount; in a container it leaves that to the container manager, and
# LoadCredential= (the speaker's token) needs it.
CMD ["/bin/sh", "-c", "mount --make-rshared / && exec /sbin/init"]
