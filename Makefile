# Two commands do all the set-up on a fresh Debian machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install system system-minimal test test-fast demo clean-venv

install: $(STAMP)

# pip installs again into the venv when the pins or the package metadata change (a package dropped from them stays:
# `make clean-venv` starts afresh).
$(STAMP): setup.cfg pyproject.toml tools/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -c tools/constraints.txt -e '.[offline,test]'
	touch $@

# System packages: all TTS voices of the mini corpus (demo), or espeak-ng and sox (tests); need root, else a note.
system:
	bash tools/install_system.sh

system-minimal:
	bash tools/install_system.sh --minimal

test: install system-minimal
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

# The quick loop for developers: skip the slow end-to-end tests.
test-fast: install system-minimal
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

demo: install system
	cd egs/mini/uattr1 && PATH="$(CURDIR)/$(BIN):$$PATH" HF_HUB_OFFLINE=1 ./run.sh

clean-venv:
	rm -rf $(VENV)
