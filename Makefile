# Braid: `make run` starts the platform on the embedded default; `make test` runs the suite.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
# `make run HOST=0.0.0.0 PORT=9000` serves on another address.
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test lint bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py braid demo --host $(HOST) --port $(PORT)
	$(PY) manage.py braid serve --host $(HOST) --port $(PORT)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(PY) manage.py makemigrations --check --dry-run --settings=tests.settings

bench: install
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf var/ .pytest_cache
