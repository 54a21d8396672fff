"""gunicorn's threaded worker with a thread kept on its connection between requests (deploy/gunicorn_conf.py).

gthread hands every request on a kept-alive connection twice between threads: the main thread's poller sees the
connection readable and submits it to the pool; once answered, the pool thread queues it back to the main thread
through a pipe, which registers it in the poller again. About ten system calls and two thread switches a request,
each switch a wait for the GIL in a busy process: 0.1 ms of a request's ~2 ms (bench/README.md, eleventh pass).
Behind HAProxy a process has about as many connections as threads (`maxconn` = its threads), so the thread that
answered a request can wait on its connection for the next one and read it itself, and the main thread is left
with new connections and health checks.

A thread waiting so must never hold back other work: when something is submitted while every thread is taken and
some are waiting on idle connections, one of them gives its connection back to the poller (gthread's own path)
and takes the work. So the worker serves as gthread would whatever the number of connections, only with fewer
hand-overs when connections are as many as threads.
"""

import contextlib
import os
import select
import threading

from gunicorn.workers.gthread import ThreadWorker


class KeptConnectionWorker(ThreadWorker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._counts = threading.Lock()
        self._taken = 0  # threads inside handle(), waiting or not
        self._waiting = 0  # of those, waiting on their idle connection
        self._give_back_r, self._give_back_w = os.pipe()
        os.set_blocking(self._give_back_r, False)
        os.set_blocking(self._give_back_w, False)

    def enqueue_req(self, conn):
        with self._counts:
            hand_over = self._waiting and self._taken >= self.cfg.threads
        if hand_over:
            self._wake_waiting(1)
        super().enqueue_req(conn)

    def handle_exit(self, sig, frame):
        super().handle_exit(sig, frame)
        self._wake_waiting(self.cfg.threads)  # they return their connections, which gthread then closes

    def _wake_waiting(self, count: int) -> None:
        # A full pipe already holds a wake-up for every waiting thread.
        with contextlib.suppress(BlockingIOError):
            os.write(self._give_back_w, b"\0" * count)

    def handle(self, conn):
        with self._counts:
            self._taken += 1
        try:
            keep = super().handle(conn)
            waiter = None
            while keep is True and self.alive:
                if not conn.parser.unreader.buf.getvalue():  # no pipelined request already read
                    if waiter is None:
                        waiter = select.poll()
                        waiter.register(conn.sock, select.POLLIN)
                        waiter.register(self._give_back_r, select.POLLIN)
                    if not self._wait(waiter, conn):
                        return keep  # back to the poller, as gthread does after every request
                keep = super().handle(conn)
            return keep
        finally:
            with self._counts:
                self._taken -= 1

    def _wait(self, waiter, conn) -> bool:
        """Wait for the connection's next request: True when it has come, False to give the connection back (work
        is waiting for this thread, the worker stops, or the connection stayed idle for the keep-alive time; gthread
        then keeps or closes it as for any other)."""
        with self._counts:
            self._waiting += 1
        try:
            while True:
                events = waiter.poll(self.cfg.keepalive * 1000)
                if not events:
                    return False
                for fd, _ in events:
                    if fd == self._give_back_r:
                        try:
                            os.read(self._give_back_r, 1)
                        except BlockingIOError:  # another waiting thread took this wake-up
                            continue
                        return False
                if not self.alive:
                    return False
                if any(fd != self._give_back_r for fd, _ in events):
                    return True
        finally:
            with self._counts:
                self._waiting -= 1
