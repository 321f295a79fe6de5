# Two commands from a fresh clone: `make chat` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: chat test bot check eval fit bench lint readme clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(STAMP)

chat: $(STAMP)
	@$(BIN)/massage-bot chat

bot: $(STAMP)
	$(BIN)/massage-bot run

check: $(STAMP)
	$(BIN)/massage-bot check

eval: $(STAMP)
	$(BIN)/massage-bot eval ../shared/eval/questions-dev.yaml
	$(BIN)/massage-bot eval --cross-validate --folds 10
	$(BIN)/python -m bot.calibration --held-out-report $(BLIND)

# Refit the matcher's weights and thresholds (about 20 minutes; writes bot/matcher_params.json).
LABELLED := ../shared/eval/questions-dev.yaml $(wildcard tests/fixtures/matcher/heldout-*.yaml)
BLIND := $(wildcard tests/fixtures/matcher/blind-wave*.yaml)
fit: $(STAMP)
	$(BIN)/python -m bot.calibration $(LABELLED) --validate $(BLIND)

test: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/massage-bot check
	$(BIN)/python -m pytest -q

bench: $(TEST_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python bench/bench_matcher.py
	$(BIN)/python bench/bench_telegram.py

lint: $(TEST_STAMP)
	$(BIN)/ruff check .

# The README's terminal transcript, from the real chat (tests/test_readme.py checks it).
readme: $(STAMP)
	$(BIN)/python tests/readme_transcript.py --write

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
