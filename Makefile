# The two commands README.md opens with. Both set up everything they need first.
#   make demo   train and evaluate the default model on MNIST, print the result
#   make test   run the whole test suite

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.digitlab-installed

# Development and CI machines keep a copy of MNIST beside the repository.
SHARED_MNIST := $(abspath ../shared/data/mnist)
ifeq ($(origin DIGITLAB_DATA_DIR),undefined)
  ifneq ($(wildcard $(SHARED_MNIST)/train-images-idx3-ubyte.gz),)
    export DIGITLAB_DATA_DIR := $(SHARED_MNIST)
  endif
endif

.PHONY: demo test install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(STAMP)
	$(VENV)/bin/digitlab train --out models/default.npz

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) out build *.egg-info
