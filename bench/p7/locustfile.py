"""P7's workload for locust: one simulated user is one CPTS team living teleconsultations one after the other.

Each teleconsultation is 20 requests by three people of the same CPTS, with a think time between them (the
coordinator books, the patient's IDEL confirms, prepares and receives the patient, the specialist writes and
signs the report of an earlier session, the coordinator watches the dispatch). The work (slots to book, done
sessions to report on, tokens, session cookies) is prepared by bench/p7/peak_hour.py and read from the JSON file
named by P7_WORK; each item is used once, so no booking can collide with another by design: a conflict or any
non-2xx answer is an error of the run. This file imports nothing from the hub: it runs in locust's own venv.

With P7_RETRY=1 (the two-node fault run, bench/two_nodes/fault_run.py) a request that fails for a transient reason
(no connection, 500, 502, 503, 504) is counted as a failure, then sent again after a back-off, as a client would
during a restart: a booking with the same Idempotency-Key, so it is never made twice; a state change (confirm,
check-in, sign) answered 409 on a retry counts as done when the resource is in the state it asked for (the first
attempt committed, its answer was lost). Each failed attempt and its outcome is written to the JSON-lines file
named by P7_EVENTS.

With P7_TIMES, each request's start (time.time()), response time and outcome is written to that file when locust
quits, so that bench/p7/peak_hour.py takes the percentiles over the part of the step where every user runs.
"""

import json
import os
import random
import time
import uuid

import gevent
from bodies import CHECK_IN, CHECKLIST, WRITTEN  # beside this file, on locust's path
from locust import FastHttpUser, between, events, task

with open(os.environ["P7_WORK"], encoding="utf-8") as handle:
    WORK = json.load(handle)
ITEMS = iter(WORK["items"])  # users are greenlets of one process: next() is never interleaved
THINK = (float(os.environ.get("P7_THINK_MIN", "0.5")), float(os.environ.get("P7_THINK_MAX", "1.5")))
RETRY = os.environ.get("P7_RETRY") == "1"
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0)  # ~30 s: past a PostgreSQL restart and the proxy's health checks
TRANSIENT = {0, 500, 502, 503, 504}  # 0: no answer (connection refused or reset)
EVENTS = os.environ.get("P7_EVENTS")
SIGNED = {"signed", "sent", "acknowledged"}
TIMES = os.environ.get("P7_TIMES")
timed: list[tuple[float, float, bool]] = []  # (start, response ms, failed) of each counted request


if TIMES:

    @events.request.add_listener
    def record(name, start_time, response_time, exception, **_) -> None:
        if name != "(check)":
            timed.append((start_time, response_time, exception is not None))

    @events.quitting.add_listener
    def write_times(**_) -> None:
        with open(TIMES, "w", encoding="utf-8") as handle:
            handle.writelines(f"{start:.3f} {took:.1f} {int(failed)}\n" for start, took, failed in timed)


def event(**fields) -> None:
    """Append one line (failures are few: opening the file each time costs nothing that counts)."""
    if EVENTS:
        with open(EVENTS, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"t": time.time(), **fields}) + "\n")


class Team(FastHttpUser):
    wait_time = between(*THINK)

    def think(self, since: float) -> None:
        """The think time counted from the request's start (constant pacing): a slower answer shortens the pause
        after it, so a user offers the step's rate whatever the response times, as independent people would, until
        the server is saturated and a request alone outlasts the pause."""
        gevent.sleep(max(0.0, random.uniform(*THINK) - (time.monotonic() - since)))

    def call(
        self, method: str, path: str, name: str, *, bearer=None, cookie=None, body=None, expect=(200,), applied=None
    ):
        """One request (sent again on a transient failure when P7_RETRY is set); the response, or None."""
        headers = {}
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        if cookie:
            headers["Cookie"] = cookie
        if method == "POST" and name == "POST /api/v1/appointments":
            headers["Idempotency-Key"] = str(uuid.uuid4())
        attempt, began = 0, time.monotonic()
        while True:
            attempt += 1
            with self.client.request(
                method, path, name=name, headers=headers, json=body, catch_response=True, allow_redirects=False
            ) as response:
                status = response.status_code
                if status in expect:
                    response.success()
                    if attempt > 1:
                        event(name=name, outcome="recovered", attempts=attempt)
                    break
                if attempt > 1 and status == 409 and applied is not None and applied():
                    response.success()
                    event(name=name, outcome="recovered", attempts=attempt, note="409: already applied")
                    break
                error = f"HTTP {status}: {(response.text or str(response.error or ''))[:200]}"
                response.failure(error)
                retry = RETRY and status in TRANSIENT and attempt <= len(RETRY_DELAYS)
                event(name=name, outcome="retry" if retry else "gave-up", attempt=attempt, error=error[:120])
            if not retry:
                self.think(began)
                return None
            gevent.sleep(RETRY_DELAYS[attempt - 1])
        self.think(began)
        return response

    def state_of(self, path: str, bearer: str) -> str | None:
        """The resource's state, read outside the statistics (a client checking a retry's outcome)."""
        response = self.client.request("GET", path, headers={"Authorization": f"Bearer {bearer}"}, name="(check)")
        return response.json().get("state") if response.status_code == 200 else None

    @task
    def teleconsultation(self) -> None:
        item = next(ITEMS, None)
        if item is None:  # the step's work is used up: the runner reports it (it seeds a margin)
            gevent.sleep(1)
            return
        team = WORK["teams"][str(item["cpts"])]
        coordinator, idel, specialist = team["coordinator"], team["idel"], team["specialist"]
        patient, day = item["patient_id"], item["slot_day"]

        # The coordinator's planning, the program's slots of the day, the patient, the booking, the IDELs.
        self.call("GET", f"/planning?week={day}", "page /planning", cookie=team["coordinator_cookie"])
        self.call(
            "GET", f"/api/v1/programs/{team['program_id']}/slots?from={day}&to={day}", "GET slots", bearer=coordinator
        )
        self.call("GET", f"/api/v1/patients/{patient}", "GET patient", bearer=coordinator)
        booked = self.call(
            "POST",
            "/api/v1/appointments",
            "POST /api/v1/appointments",
            bearer=coordinator,
            body={"slot_id": item["slot_id"], "patient_id": patient, "place_kind": "lieu_dedie"},
            expect=(201,),
        )
        if booked is None:
            return
        appointment = booked.json()["id"]
        self.call("GET", f"/api/v1/appointments/{appointment}/candidates", "GET candidates", bearer=coordinator)

        # The IDEL: « Mes visites », the proposal, the confirmation, the calendar feed, the checklist, the check-in.
        self.call("GET", "/visits", "page /visits", cookie=team["idel_cookie"])
        self.call("GET", f"/api/v1/appointments/{appointment}", "GET appointment", bearer=idel)
        visit = f"/api/v1/appointments/{appointment}"
        self.call(
            "POST",
            f"{visit}/confirm",
            "POST confirm",
            bearer=idel,
            applied=lambda: self.state_of(visit, idel) in {"confirmed", "checked_in"},
        )
        self.call("GET", f"/ical/{team['feed']}.ics", "GET ical", expect=(200, 304))
        self.call("GET", f"/api/v1/patients/{patient}", "GET patient", bearer=idel)
        self.call(
            "POST", f"/api/v1/appointments/{appointment}/checklist", "POST checklist", bearer=idel, body=CHECKLIST
        )
        self.call(
            "POST",
            f"{visit}/check-in",
            "POST check-in",
            bearer=idel,
            body=CHECK_IN,
            applied=lambda: self.state_of(visit, idel) == "checked_in",
        )

        # The specialist reports on a session already done, signs; the deliveries go to the outbox.
        done = item["done_id"]
        self.call("GET", f"/api/v1/appointments/{done}", "GET appointment", bearer=specialist)
        self.call("GET", f"/api/v1/patients/{item['done_patient_id']}", "GET patient", bearer=specialist)
        draft = self.call(
            "POST",
            "/api/v1/reports",
            "POST report draft",
            bearer=specialist,
            body={"appointment_id": done},
            expect=(201, 200),  # 200: the draft a lost answer had already begun
        )
        if draft is None:
            return
        report = draft.json()["id"]
        self.call("PATCH", f"/api/v1/reports/{report}", "PATCH report", bearer=specialist, body=WRITTEN)
        self.call(
            "POST",
            f"/api/v1/reports/{report}/sign",
            "POST sign",
            bearer=specialist,
            applied=lambda: self.state_of(f"/api/v1/reports/{report}", specialist) in SIGNED,
        )
        self.call("GET", f"/api/v1/reports/{report}", "GET report", bearer=specialist)

        # The coordinator follows the dispatch and the desk's queues.
        self.call("GET", "/api/v1/outbox?per_page=20", "GET outbox", bearer=coordinator)
        self.call("GET", "/api/v1/me/desk", "GET desk", bearer=coordinator)
        # Calendar clients poll the feed: the IDEL's again, now holding the checked-in session.
        self.call("GET", f"/ical/{team['feed']}.ics", "GET ical", expect=(200, 304))
