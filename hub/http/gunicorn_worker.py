"""gunicorn's threaded worker with a thread kept on its connection between requests (deploy/gunicorn_conf.py).

gthread hands every request on a kept-alive connection twice between threads: the main thread's poller sees the
connection readable and submits it to the pool; once answered, the pool thread queues it back to the main thread
through a pipe, which registers it in the poller again. About ten system calls and two thread switches a request,
each switch a wait for the GIL in a busy process: 0.2 ms of the ~1.3 ms a P7 request cost on one connection, more
under load (bench/README.md, eleventh pass).
Behind HAProxy a process has about as many connections as threads (`maxconn` = its threads), so the thread that
answered a request can wait on its connection for the next one and read it itself, and the main thread is left
with new connections and health checks.

A thread waiting so must never hold back other work: when queued connections outnumber the threads free to take
them, one waiting thread is woken (a byte on a pipe), gives its connection back to the poller (gthread's own path)
and takes the work; a thread about to wait checks the same counts first, so work queued while every thread was
answering is taken by the first one done. The worker thus serves as gthread would whatever the number of
connections, only with fewer hand-overs when connections are as many as threads. A stopping worker wakes every
waiting thread.
(A connection idle for the keep-alive time in a thread is then kept by gthread for its keep-alive time again: an
idle connection may live twice `keep_alive`, holding a socket, no thread.)
"""

import contextlib
import os
import select
import threading
import time

from gunicorn.workers.gthread import ThreadWorker


class KeptConnectionWorker(ThreadWorker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._counts = threading.Lock()
        self._queued = 0  # connections submitted to the pool and not yet taken by a thread
        self._taken = 0  # threads inside handle(), waiting or not
        self._waiting = 0  # of those, waiting on their idle connection
        self._wakes = 0  # wake-ups written to the pipe and not yet read

    def init_process(self):
        # In the worker: __init__ runs in the arbiter before the fork, where a pipe would leak at each respawn.
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        super().init_process()

    def enqueue_req(self, conn):
        with self._counts:
            self._queued += 1
            wake = self._waiting > self._wakes and self._unserved()
            if wake:
                self._wakes += 1
        if wake:
            self._write_wakes(1)
        try:
            super().enqueue_req(conn)
        except RuntimeError:  # the pool is shut down: the connection will never be taken
            with self._counts:
                self._queued -= 1
            raise

    def _unserved(self) -> bool:
        """Whether queued connections outnumber the threads free to take them (those outside handle(), and those
        already woken to give their connection back); called with the counts' lock held."""
        return self._queued > self.cfg.threads - self._taken + self._wakes

    def handle_exit(self, sig, frame):
        super().handle_exit(sig, frame)
        self._wake_all()

    def handle_quit(self, sig, frame):
        self.alive = False
        self._wake_all()  # or the interpreter's exit would join threads waiting for the keep-alive time
        super().handle_quit(sig, frame)

    def is_parent_alive(self):
        if super().is_parent_alive():
            return True
        self.alive = False
        self._wake_all()
        return False

    def _wake_all(self) -> None:
        """Once the worker stops (alive is False): every waiting thread gives its connection back and leaves."""
        self._write_wakes(self.cfg.threads)

    def _write_wakes(self, count: int) -> None:
        # A full pipe already holds a wake-up for every waiting thread.
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"\0" * count)

    def handle(self, conn):
        with self._counts:
            self._queued -= 1
            self._taken += 1
        try:
            keep = super().handle(conn)
            waiter = None
            while keep is True and self.alive and not conn.is_http2:
                if not conn.parser.unreader.buf.getvalue():  # no pipelined request already read
                    if waiter is None:
                        waiter = select.poll()
                        waiter.register(conn.sock, select.POLLIN)
                        waiter.register(self._wake_r, select.POLLIN)
                    if not self._wait(waiter):
                        return keep  # back to the poller, as gthread does after every request
                keep = super().handle(conn)
            if not self.alive:  # max_requests reached in that request: the other threads must not wait on
                self._wake_all()
            return keep
        finally:
            with self._counts:
                self._taken -= 1

    def _wait(self, waiter) -> bool:
        """Wait for the connection's next request: True when it has come, False to give the connection back (work
        is waiting for this thread, the worker stops, or the connection stayed idle for the keep-alive time: gthread
        then keeps it for its own keep-alive time, or closes it)."""
        with self._counts:
            # Submitted while every thread was answering, or with fewer threads free than connections queued (no
            # thread was waiting then, or not enough were woken): it would otherwise wait for a connection to close
            # or stay idle for the keep-alive time.
            if self._unserved():
                return False
            self._waiting += 1
        try:
            deadline = time.monotonic() + self.cfg.keepalive
            while True:
                # Another waiter may take the wake-up that woke this one: the keep-alive time runs on, not again.
                events = waiter.poll(max(0, int((deadline - time.monotonic()) * 1000)))
                if not events:
                    return False
                ready = {fd for fd, _ in events}
                if self._wake_r in ready and self._take_wake():
                    return False
                if not self.alive:
                    return False
                if ready != {self._wake_r}:
                    return True
        finally:
            with self._counts:
                self._waiting -= 1

    def _take_wake(self) -> bool:
        """Read one wake-up: False when another waiting thread took it first."""
        try:
            os.read(self._wake_r, 1)
        except BlockingIOError:
            return False
        with self._counts:
            self._wakes = max(0, self._wakes - 1)  # _wake_all's are not counted
        return True
