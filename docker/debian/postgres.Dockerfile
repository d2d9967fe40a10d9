# Stand-in for postgres:15-alpine: Debian's PostgreSQL 15 with the official image's contract (POSTGRES_USER,
# POSTGRES_PASSWORD, POSTGRES_DB; data in /var/lib/postgresql/data; `postgres` arguments from the command).
ARG BASE
FROM ${BASE}
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-15 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql && chown -R postgres /var/lib/postgresql /var/run/postgresql
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/
USER postgres
ENTRYPOINT ["postgres-entrypoint.sh"]
CMD ["postgres"]
