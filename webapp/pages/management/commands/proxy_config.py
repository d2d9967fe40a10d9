"""``manage.py proxy_config``: the nginx configuration that goes in front of gunicorn, written from the app's own
limits (webapp/limits.py for time, the upload settings for size), so the proxy and the app never disagree.

nginx buffers each request whole before gunicorn sees it: a client that sends its headers a line every few seconds
(slowloris) holds an nginx connection (a few KB), never one of gunicorn's few workers. Measured in docs/deploy.md
(bench/slowloris.py). Static files stay with WhiteNoise (hashed names, cached a year) through the proxy.
"""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from webapp import limits


def _size(n: int) -> str:
    return f"{-(-n // 1024**2)}m"  # nginx counts in MiB here: rounded up, never below the app's own limit


def proxy_config(*, listen: str, upstream: str, prefix: str, user: str | None = None) -> str:
    body = max(settings.UPLOAD_MAX_BYTES, settings.DATA_UPLOAD_MAX_MEMORY_SIZE, settings.LABEL_STUDIO_IMPORT_MAX_BYTES)
    body = max(body, settings.IMPORT_MAX_BYTES)
    video = settings.RECORDING_MAX_UPLOAD_BYTES
    proxied = """proxy_pass http://app;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header Connection "";"""
    return f"""# Written by `manage.py proxy_config` from webapp/limits.py and the upload settings (write it again)
{f"user {user};" if user else ""}
worker_processes auto;
pid {prefix}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}

http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;

    # a slow client is cut here, never handed to gunicorn: the request line and headers within
    # REQUEST_HEADER_SECONDS, no pause of more than REQUEST_BODY_SECONDS in a body or a response
    client_header_timeout {limits.HEADER_SECONDS:g}s;
    client_body_timeout {limits.BODY_SECONDS:g}s;
    send_timeout {limits.BODY_SECONDS:g}s;
    keepalive_timeout 15s;
    reset_timedout_connection on;
    large_client_header_buffers 4 16k;
    # the largest body the app takes (uploads, imports); the video upload its own, below
    client_max_body_size {_size(body)};
    client_body_buffer_size 1m;
    proxy_request_buffering on;
    proxy_buffering on;
    proxy_http_version 1.1;
    proxy_connect_timeout 5s;
    # a request's budget (REQUEST_TIMEOUT_SECONDS), gunicorn's timeout too
    proxy_read_timeout {limits.REQUEST_SECONDS:g}s;
    proxy_send_timeout {limits.REQUEST_SECONDS:g}s;

    upstream app {{
        server {upstream};
        keepalive 16;
    }}

    server {{
        listen {listen} reuseport;
        server_tokens off;
        location / {{
            {proxied}
        }}
        location = /api/recordings/upload/ {{
            client_max_body_size {_size(video)};
            {proxied}
        }}
        # exports stream their rows as they are written: passed on as they come, not held to the end
        location /api/datasets/export/ {{
            proxy_buffering off;
            {proxied}
        }}
    }}
}}
"""


class Command(BaseCommand):
    help = "Print (or write) the nginx configuration for the proxy in front of gunicorn, from the app's limits."

    def add_arguments(self, parser):
        parser.add_argument("--listen", default="127.0.0.1:8080", help="address:port nginx listens on")
        parser.add_argument("--upstream", default="127.0.0.1:8000", help="gunicorn's address:port (its BIND)")
        parser.add_argument("--prefix", default=str(settings.VAR_DIR / "nginx"), help="nginx's pid and temp files")
        parser.add_argument("--user", default=None, help="the user nginx's workers run as (when started as root)")
        parser.add_argument("--out", default=None, help="write it to this file (default: print it)")

    def handle(self, *args, listen, upstream, prefix, user, out, **options):
        Path(prefix).mkdir(parents=True, exist_ok=True)
        text = proxy_config(listen=listen, upstream=upstream, prefix=prefix, user=user)
        if out:
            Path(out).write_text(text)
            self.stderr.write(f"wrote {out}: nginx -c {Path(out).resolve()} -p {prefix} -g 'daemon off;'")
        else:
            self.stdout.write(text)
