# Set-up and the two everyday commands: `make run` (the main job) and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
DATASET ?= ../shared/datasets/pan-dulce
PORT ?= 8000

.PHONY: run demo test bench clean

$(BIN)/pandulce: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned, so that nothing later pulls another build of it.
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

# The whole stack on this machine: Redis, workers and the web app, with SQLite.
run: $(BIN)/pandulce
	$(BIN)/pandulce stack --dataset $(DATASET) --port $(PORT)

# Train on the photo set and classify it from the command line.
demo: $(BIN)/pandulce
	$(BIN)/pandulce train $(DATASET) --backbone efficientnet-lite0 --out models/demo
	$(BIN)/pandulce classify $(DATASET) --model models/demo --out results/demo.csv

test: $(BIN)/pandulce
	bash scripts/test-services.sh
	$(BIN)/python -m pytest

bench: demo
	$(BIN)/python bench/train_speed.py --backbone efficientnet-lite0
	$(BIN)/python bench/classify_speed.py --model models/demo
	$(BIN)/python bench/queue_throughput.py --model models/demo

clean:
	rm -rf $(VENV) models results
