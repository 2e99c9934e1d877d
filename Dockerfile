# clinicall in a container, on Debian 12 as the systemd recipe is (Debian's Python 3.11 in a venv).
# Build: docker build -t clinicall .   Run it with deploy/docker/compose.yaml (clinicall x2, PostgreSQL,
# Redis, nginx with TLS). The only base image is debian:bookworm-slim (docs/deploy.md, "Containers",
# makes it from Debian's archive where no image registry is reachable).
FROM debian:bookworm-slim

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-venv ca-certificates espeak-ng sox libsox-fmt-mp3 postgresql-client \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /var/lib/clinicall --shell /usr/sbin/nologin clinicall \
 && install -d -o clinicall -g clinicall -m 0750 /var/lib/clinicall

WORKDIR /opt/clinicall
COPY . .
RUN python3 -m venv /opt/clinicall/venv \
 && /opt/clinicall/venv/bin/pip install --no-cache-dir --disable-pip-version-check . \
 && rm -rf build ./*.egg-info \
 && /opt/clinicall/venv/bin/clinicall --version

USER clinicall
ENV PATH=/opt/clinicall/venv/bin:$PATH \
    CLINICALL_DATA_DIR=/var/lib/clinicall \
    CLINICALL_HTTP__HOST=0.0.0.0 \
    CLINICALL_HTTP__PORT=8080 \
    CLINICALL_TELEPHONY__AGI_HOST=0.0.0.0 \
    CLINICALL_TELEPHONY__AGI_ALLOW_REMOTE=true \
    CLINICALL_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1
WORKDIR /var/lib/clinicall
VOLUME /var/lib/clinicall
EXPOSE 8080 4573
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s \
  CMD ["python3", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/livez', timeout=2).status == 200 else 1)"]
CMD ["clinicall", "serve"]
