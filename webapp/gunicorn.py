"""gunicorn settings of the web role: ``gunicorn -c python:webapp.gunicorn webapp.wsgi`` (Dockerfile, compose and
bench/load_labeling.py use it; flags on the command line override it, WEB_CONCURRENCY sets the processes).

One thread per process, one process more than there are cores. Threads of one process share its GIL, and a thread
that holds SQLite's write lock then waits for the GIL while the others wait for the lock: on the 2-core machine of
this project, 200 labelers with 2 s think time (`bench/load_labeling.py --clients 200 --think 2`) gave p99 680 and
1,547 ms with 4 processes x 4 threads, 437 ms with 4 x 1, 230 ms with 2 x 1 and 71-546 ms with 3 x 1 (README,
Benchmarks).
"""

import multiprocessing
import os

from webapp import limits

bind = os.environ.get("BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() + 1))
worker_class = "gthread"
threads = 1
keepalive = 10  # seconds: longer than a labeler's pause between two requests, so their connection is kept
# A request's budget (webapp/limits.py), the proxy's read timeout too. Slow clients never reach a worker here: the
# proxy in front (manage.py proxy_config) buffers every request whole first.
timeout = int(limits.REQUEST_SECONDS)
graceful_timeout = int(limits.REQUEST_SECONDS)
