# powerprune: `make run` (the main job) and `make test`. Both install what they need first;
# every install step is skipped when its result is already there.
PY ?= python3
RUNS ?= runs
PIP_STAMP := .setup-pip.stamp
RUNNER := powerprune/mcu/runner

.PHONY: setup test run lint bench clean

setup: check-install
	@$(MAKE) -s --no-print-directory $(PIP_STAMP) $(RUNNER)/node_modules/.package-lock.json
	@command -v arm-none-eabi-gcc >/dev/null && command -v node >/dev/null \
	  && test -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz \
	  && test -d /usr/lib/arm-none-eabi/newlib \
	  || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      gcc-arm-none-eabi libnewlib-arm-none-eabi dataset-fashion-mnist nodejs npm)

# torch first, from the local CPU build, so the package's own dependencies never pull CUDA wheels.
# Reinstall when pyproject.toml changed or when the installed package is another checkout's
# (CI and other clones install theirs in editable mode too).
$(PIP_STAMP): pyproject.toml
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev,ray]"
	@touch $@

.PHONY: check-install
check-install:
	@cd / && $(PY) -c "import pathlib, powerprune; \
	assert pathlib.Path(powerprune.__file__).resolve().parent == pathlib.Path('$(CURDIR)/powerprune').resolve()" \
	  2>/dev/null || rm -f $(CURDIR)/$(PIP_STAMP)

$(RUNNER)/node_modules/.package-lock.json: $(RUNNER)/package-lock.json
	@command -v npm >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm)
	cd $(RUNNER) && npm ci --no-audit --no-fund --loglevel=error

test: setup
	$(PY) -m pytest -q

lint: setup
	ruff check powerprune tests bench

# The main job: the paper's experiment end to end (train, prune with magnitude and APoZ at 2..64x,
# int8, virtual Pico with every kernel set, energy, report). Rerunning resumes from the cache.
run: setup
	powerprune run --out $(RUNS)/paper

bench: setup bench/work/base.pt
	$(PY) bench/bench_kernels.py
	$(PY) bench/bench_emulator.py

bench/work/base.pt:
	powerprune train --out $@

clean:
	rm -rf $(RUNS) $(PIP_STAMP)
