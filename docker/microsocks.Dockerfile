# A lab upstream for docker-compose.yaml: Debian's microsocks, a small SOCKS5 server.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends microsocks && rm -rf /var/lib/apt/lists/*
USER nobody
EXPOSE 1080
ENTRYPOINT ["microsocks", "-i", "0.0.0.0", "-p", "1080"]
