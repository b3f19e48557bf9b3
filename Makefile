# Two entry points: `make demo` (set up, then run the main job on data/) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
OUT    ?= out
DATA   := data/sample_traces.jsonl.gz
LOGS   := data/sample_logs.jsonl.gz

.PHONY: demo test install lint notebooks clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# The main job on the shipped data (data/README.md): validate -> ingest -> monitoring metrics
# of the production log -> split the counterfactual traces by request -> train a router ->
# monitoring dashboard -> evaluate the router on the held-out requests
# (out/evaluation/report.html; the last line printed is the headline).
demo: install
	rm -rf $(OUT)
	$(BIN)/aco-lab validate $(DATA)
	$(BIN)/aco-lab ingest $(DATA) --out $(OUT)/dataset
	$(BIN)/aco-lab stats $(LOGS)
	$(BIN)/aco-lab holdout $(DATA) --out $(OUT)/split
	$(BIN)/aco-lab train $(OUT)/split/train.jsonl.gz --out $(OUT)/router_models
	$(BIN)/aco-lab report $(LOGS) --out $(OUT)/dashboard
	$(BIN)/aco-lab evaluate --bundle latest --models-dir $(OUT)/router_models \
		$(OUT)/split/eval.jsonl.gz --out $(OUT)/evaluation

test: install
	$(BIN)/python -m pytest -q -n 2

# Execute the notebooks in order (03 loads the router 02 trains) and save their outputs: on
# ../shared/data/routerbench-dev when present, else on data/ (docs/evaluation.md#notebooks).
notebooks: install
	cd notebooks && ../$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.record_timing=False 01_*.ipynb 02_*.ipynb 03_*.ipynb

lint: install
	$(BIN)/ruff check aco aco_lab tests scripts examples notebooks
	$(BIN)/ruff format --check aco aco_lab tests scripts examples notebooks

clean:
	rm -rf $(OUT) .pytest_cache
