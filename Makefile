# The hub's two set-up commands: `make run` (demo territory on SQLite) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export FLASK_APP := wsgi

.PHONY: run test test-servers test-browser lint bench bench-p7 fault-run demo migrate clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

migrate: $(STAMP)
	HUB_ENV=development $(BIN)/flask db upgrade

demo: migrate
	HUB_ENV=development $(BIN)/flask hub demo

# The scheduler and outbox dispatcher run beside the development server, and stop with it.
run: demo
	@trap 'kill 0' INT TERM EXIT; \
	HUB_ENV=development $(BIN)/flask hub worker & \
	HUB_ENV=development $(BIN)/flask run --host 127.0.0.1 --port 5000

# The MDN reader's tests run a private Dovecot on a loopback port (tests/imap_server.py), and the browser tests
# (tests/browser) drive Debian's Chromium: each installed here when it is missing and the machine allows it (root
# with apt-get); without it those tests are skipped, not failed. The Pro Santé Connect tests run panva's
# oidc-provider under Node.js (tests/psc_provider, pinned by its lock file), installed here with npm.
test-servers:
	@[ -x /usr/sbin/dovecot ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q dovecot-imapd >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q dovecot-imapd >/dev/null 2>&1; }; }; } || \
	  echo "dovecot-imapd absent: the IMAP (MDN) tests will be skipped"
	@[ -x /usr/bin/chromium ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; }; }; } || \
	  echo "chromium absent: the browser tests (tests/browser) will be skipped"
	@[ -d tests/psc_provider/node_modules/oidc-provider ] || \
	  { command -v npm >/dev/null && npm ci --no-audit --no-fund --silent --prefix tests/psc_provider >/dev/null 2>&1; } || \
	  echo "npm or the registry unreachable: the Pro Santé Connect tests (tests/auth/test_psc.py) will be skipped"

test: $(STAMP) test-servers
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/pytest

# The browser tests alone (Chromium against the app on loopback); screenshots in tests/browser/screenshots/.
test-browser: $(STAMP) test-servers
	$(BIN)/pytest tests/browser

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/api_read.py

# P7: the national peak hour replayed with locust (the `bench` extra, installed here only) against gunicorn,
# PostgreSQL and the hub worker; about 10 minutes. P7_PG_URL names a PostgreSQL database it may wipe.
P7_PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/bench_p7
bench-p7: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/p7/peak_hour.py --pg-url $(P7_PG_URL) --locust $(BIN)/locust

# R15: two gunicorn nodes behind HAProxy, two workers and a private PostgreSQL 15 cluster (its own port, never the
# machine's) under P7's load, while a node, the leading worker and PostgreSQL are killed or restarted; about
# 8 minutes. Needs root (to install haproxy and run the cluster as `postgres`) or both already in place.
FAULT_RUN_ARGS ?= --multiple 1 --seconds 300
fault-run: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/two_nodes/fault_run.py --locust $(BIN)/locust $(FAULT_RUN_ARGS)

clean:
	rm -rf $(VENV) instance/hub.sqlite3*
