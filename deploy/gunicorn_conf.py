"""gunicorn's settings for a web node, read by deploy/systemd/cpts-hub-web@.service, bench/p7 and bench/two_nodes
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
import sys

# gthread, its threads kept on their connections between requests (hub/http/gunicorn_worker.py); hub.env may say
# HUB_WEB_WORKER_CLASS=gthread, gunicorn's own, should a gunicorn upgrade break the subclass (or to compare them).
worker_class = os.environ.get("HUB_WEB_WORKER_CLASS", "hub.http.gunicorn_worker.KeptConnectionWorker")
# One process per instance (cpts-hub-web@<port>), a host running about one instance per core: HAProxy sees each
# process as a server and limits it to its threads, which it cannot do for the processes of one gunicorn (a kept
# connection stays with the process that accepted it; docs/deployment.md, « Limits per node »).
workers = 1


def on_starting(server):
    # A hub.env of the former layout (one gunicorn of HUB_WEB_WORKERS processes per host) would otherwise run one
    # process where the operator expects several: nothing fails, the host just serves half of what it should.
    if "HUB_WEB_WORKERS" in os.environ:
        server.log.warning(
            "HUB_WEB_WORKERS=%s is ignored: each cpts-hub-web@<port> instance runs one process; run one instance per "
            "core, each a server in HAProxy (docs/deployment.md, « Limits per node »), and drop it from hub.env",
            os.environ["HUB_WEB_WORKERS"],
        )


threads = int(os.environ.get("HUB_WEB_THREADS", "4"))
# A thread back from a database round trip waits for the GIL until the thread holding it is asked to let go, every
# switch interval: CPython's 5 ms, against requests of 1–2 ms of CPU and about five round trips each, made a busy
# process's requests wait in turn for each other's CPU (bench/README.md, eighth pass). Inherited by the forked worker.
sys.setswitchinterval(float(os.environ.get("HUB_GIL_SWITCH_MS", "1")) / 1000)
# Under gthread, `timeout` is only a liveness check: the worker's main loop tells the arbiter it is alive while a view
# thread may run or wait for ever, so it no longer bounds a request (a sync worker stuck in one was killed, and its
# connection's transaction rolled back). The database bounds the work instead: PostgreSQL cancels a statement that
# runs or waits on a lock past these limits, and the request gets the 500 page or problem with its transaction rolled
# back (hub.db.make_engine, hub.http.errors), before HAProxy gives up on the node (`timeout server 60s`). Each
# statement is bounded, not a request's sum of them.
# The process environment, so hub.env may set others; the workers and the CLI, which never read this file, keep none.
os.environ.setdefault("HUB_STATEMENT_TIMEOUT_MS", "55000")
os.environ.setdefault("HUB_LOCK_TIMEOUT_MS", "10000")
# Seconds an idle connection is kept. HAProxy does not close an idle connection to a node after a fixed delay: each
# pool-purge-delay (5 s) it closes only the idle ones above its estimated need, so under steady load one may stay idle
# for minutes. The node then closes it first, and a request HAProxy sends on it just then fails (retried for a GET or
# an Idempotency-Key, a 502 for a form POST). Minutes rather than seconds make that rarer; an idle connection costs a
# socket, not a thread.
keep_alive = 300
timeout = 60
graceful_timeout = 30
