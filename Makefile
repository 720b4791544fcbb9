# The README's two commands: `make demo` and `make test`. Both set up .venv on their own.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.npu-installed
# MicroPython's source for the qemu core's firmware image: $MICROPY_DIR, else a checkout
# beside this one (CI's ../shared/micropython) when there is one
MICROPY_DIR ?= $(wildcard $(abspath ../shared/micropython))
export MICROPY_DIR
# CMSIS-NN for the native npu module's Arm kernels in those images: $CMSIS_NN_DIR, else CI's
# ../shared/cmsis-nn when there is one (neither: the module's portable C kernels)
CMSIS_NN_DIR ?= $(wildcard $(abspath ../shared/cmsis-nn))
export CMSIS_NN_DIR

.PHONY: install demo test check-wheel clean

$(STAMP): pyproject.toml setup.py $(wildcard board_emulator/csrc/*.c board_emulator/csrc/*.h)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip "setuptools>=77" wheel
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(PY) tools/demo.py

test: $(STAMP)
	$(PY) -m pytest -q

# the sdist and the wheel, installed in a fresh venv and used from outside the checkout
check-wheel: $(STAMP)
	PY=$(PY) tools/ci_wheel.sh

clean:
	rm -rf $(VENV) build out *.egg-info
