# Stand-in for redis:7-alpine: Debian's redis-server 7.0; compose gives the command.
ARG BASE
FROM ${BASE}
RUN apt-get update && apt-get install -y --no-install-recommends redis-server && rm -rf /var/lib/apt/lists/*
USER redis
CMD ["redis-server", "--save", "", "--appendonly", "no"]
