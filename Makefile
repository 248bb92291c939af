# powerprune: `make run` (the main job) and `make test`. Both install what they need first;
# every install step is skipped when its result is already there.
PY ?= python3
RUNS ?= runs
PIP_STAMP := .setup-pip.stamp
RUNNER := powerprune/mcu/runner

.PHONY: setup test test-fast run lint bench clean

setup: check-install
	@$(MAKE) -s --no-print-directory apt-deps
	@$(MAKE) -s --no-print-directory $(PIP_STAMP) $(RUNNER)/node_modules/.package-lock.json

# Ask apt only for what is missing: a machine whose Node.js already ships npm refuses Debian's
# npm ("nodejs : Conflicts: npm"), so nodejs/npm are requested only when the commands are absent.
.PHONY: apt-deps
apt-deps:
	@missing="$$(command -v arm-none-eabi-gcc >/dev/null || echo gcc-arm-none-eabi; \
	  test -d /usr/lib/arm-none-eabi/newlib || echo libnewlib-arm-none-eabi; \
	  test -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz || echo dataset-fashion-mnist; \
	  command -v chromium >/dev/null || echo chromium; \
	  command -v node >/dev/null || echo nodejs; \
	  command -v npm >/dev/null || echo npm)"; \
	test -z "$$missing" || (echo "setup: installing with apt:" $$missing && apt-get update -qq \
	  && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null)

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
	cd $(RUNNER) && npm ci --no-audit --no-fund --loglevel=error

test: setup
	$(PY) -m pytest -q

# The edit-test loop, under a minute: every test but the slow ones (training, the virtual Pico, firmware
# builds, anything over a second). HYPOTHESIS_PROFILE=dev draws a tenth of the examples.
test-fast: setup
	$(PY) -m pytest -q -m "not slow"

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
