# The two commands: `make demo` (set up; train a model; evaluate it; generate its C and verify it bit for bit on
# the host and on an emulated Cortex-M4; build and run its firmware; bench it) and `make test`.
PYTHON_SYS ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.irnet-edge-installed
DEMO_DIR ?= runs/demo

# torch wheels pinned for this platform; the package itself only asks for version floors
ifeq ($(shell uname -m),aarch64)
TORCH_PINS := torch==2.9.1 torchvision==0.24.1
else
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
endif

.PHONY: setup system-packages counter demo test lint clean

setup: system-packages $(STAMP) counter

# irnet-edge bench's instruction counter: a QEMU plugin built once (it fetches QEMU's plugin header)
counter: $(STAMP)
	@$(PY) -c "from irnet_edge.bench.plugin import build_plugin; build_plugin(print)"

system-packages:
	@scripts/system-packages.sh

$(STAMP): pyproject.toml setup.py
	test -x $(PY) || $(PYTHON_SYS) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -e '.[dev,flash]'
	touch $@

demo: setup
	@if [ -f $(DEMO_DIR)/model.pt ]; then \
	    $(VENV)/bin/irnet-edge train --out $(DEMO_DIR) --resume; \
	else \
	    $(VENV)/bin/irnet-edge train --out $(DEMO_DIR); \
	fi
	$(VENV)/bin/irnet-edge evaluate $(DEMO_DIR)/model.pt
	$(VENV)/bin/irnet-edge summary $(DEMO_DIR)/model.pt
	$(VENV)/bin/irnet-edge codegen $(DEMO_DIR)/model.pt --target host --out $(DEMO_DIR)/c --force
	$(VENV)/bin/irnet-edge verify $(DEMO_DIR)/model.pt --target host --samples 1000
	$(VENV)/bin/irnet-edge verify $(DEMO_DIR)/model.pt --target cortex-m --board mps2-an386 --samples 200 \
	    --agreement-samples 0
	$(VENV)/bin/irnet-edge firmware $(DEMO_DIR)/model.pt --board mps2-an386 --out $(DEMO_DIR)/firmware --force
	$(VENV)/bin/irnet-edge run $(DEMO_DIR)/firmware --count-instructions
	$(VENV)/bin/irnet-edge bench $(DEMO_DIR)/model.pt --target cortex-m --board mps2-an386 --baseline float32

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check irnet_edge tests benchmarks setup.py

clean:
	rm -rf build dist *.egg-info irnet_edge/_templates irnet_edge/_firmware
