# The hub's two set-up commands: `make run` (demo territory on SQLite) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export FLASK_APP := wsgi

.PHONY: run test lint bench demo migrate clean

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

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python bench/api_read.py

clean:
	rm -rf $(VENV) instance/hub.sqlite3*
