"""gunicorn's settings for a web node, read by deploy/systemd/cpts-hub-web.service, bench/p7 and bench/two_nodes
(`gunicorn -c deploy/gunicorn_conf.py`; options given on the command line win over these).

Threaded workers with keep-alive rather than sync workers (bench/README.md, P7, « the gunicorn gap »): a sync worker
takes one connection per request and closes it, and before closing it waits for the client's FIN (gunicorn's
graceful close), every idle sync worker wakes for each new connection on the shared socket (three failed accepts
per request with four workers), and the client connects again each time. A threaded worker keeps the connection
(HAProxy's and a load tester's), and its threads overlap the requests' database waits, so two processes fill two
cores. The hub keeps no request state outside Flask's context, its database session and context variables; its
process-wide caches are safe under threads (bench/README.md lists what was checked).
"""

import os

worker_class = "gthread"
workers = int(os.environ.get("HUB_WEB_WORKERS", "2"))  # about one per core: the threads wait on the database
threads = int(os.environ.get("HUB_WEB_THREADS", "4"))
# Seconds an idle connection is kept: longer than HAProxy keeps an idle connection to a node (pool-purge-delay, 5 s),
# so that the proxy closes it, never the node under a request the proxy is sending.
keep_alive = 30
timeout = 60
graceful_timeout = 30
