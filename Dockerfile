# clinicall in a container (Debian 12 base). Build: docker build -t clinicall .
# Run it with deploy/docker/compose.yaml (clinicall x2, PostgreSQL, Redis, nginx with TLS).
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      espeak-ng sox libsox-fmt-mp3 postgresql-client \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /var/lib/clinicall --shell /usr/sbin/nologin clinicall \
 && install -d -o clinicall -g clinicall -m 0750 /var/lib/clinicall

WORKDIR /opt/clinicall
COPY pyproject.toml README.md ./
COPY clinicall ./clinicall
COPY crm_bridge ./crm_bridge
COPY telephony ./telephony
COPY queue_display ./queue_display
COPY audio ./audio
COPY speaker ./speaker
RUN pip install --no-cache-dir . && rm -rf build

USER clinicall
ENV CLINICALL_DATA_DIR=/var/lib/clinicall \
    CLINICALL_HTTP__HOST=0.0.0.0 \
    CLINICALL_HTTP__PORT=8080 \
    CLINICALL_TELEPHONY__AGI_HOST=0.0.0.0 \
    CLINICALL_TELEPHONY__AGI_ALLOW_REMOTE=true \
    CLINICALL_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1
VOLUME /var/lib/clinicall
EXPOSE 8080 4573
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/livez', timeout=2).status == 200 else 1)"
CMD ["clinicall", "serve"]
