# The two commands a fresh clone needs (see README.md):
#   make demo   runs `svarbot demo` on the embedded default configuration
#   make test   runs the checks and the test suite
# Both create or refresh the virtual environment in .venv when pyproject.toml changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest bench bench-report bench-formats bench-mail bench-wave bench-scale bench-telegram bench-web clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/svarbot demo

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check bot flows storage tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/engine_step.py

bench-report: $(STAMP)
	$(BIN)/python bench/report_duckdb.py

bench-formats: $(STAMP)
	$(BIN)/python bench/report_formats.py

bench-mail: $(STAMP)
	$(BIN)/python bench/mail_outbound.py
	$(BIN)/python bench/mail_inbound.py

bench-wave: $(STAMP)
	$(BIN)/python bench/wave_100k.py

bench-scale: $(STAMP)
	$(BIN)/python bench/scale_out.py

bench-telegram: $(STAMP)
	$(BIN)/python bench/telegram_wave.py

bench-web: $(STAMP)
	$(BIN)/python bench/web_pages.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
