# Timeline Bot in a container: `docker compose up` (see compose.yaml and the README).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    TIMELINE_BOT_CONFIG=/etc/timeline-bot/config.toml

WORKDIR /app
COPY pyproject.toml setup.py README.md LICENSE ./
COPY timeline ./timeline
COPY feeds ./feeds
COPY discordbot ./discordbot
COPY webui ./webui
COPY migrations ./migrations
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /var/lib/timeline-bot --create-home timeline

USER timeline
WORKDIR /var/lib/timeline-bot
# The config must set [metrics] host = "0.0.0.0" and a port (9108 here) for the health check.
EXPOSE 9108
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["timeline-bot", "health"]
CMD ["sh", "-c", "timeline-bot db upgrade && exec timeline-bot run"]
