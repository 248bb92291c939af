# powerprune: `make run` (the main job) and `make test`. Both install what they need first;
# every install step is skipped when its result is already there.
PY ?= python3
OUT ?= out
PIP_STAMP := .setup-pip.stamp
RUNNER := powerprune/mcu/runner

.PHONY: setup test run lint bench clean

setup: $(PIP_STAMP) $(RUNNER)/node_modules/.package-lock.json
	@command -v arm-none-eabi-gcc >/dev/null && command -v node >/dev/null \
	  && test -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz \
	  && test -d /usr/lib/arm-none-eabi/newlib \
	  || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      gcc-arm-none-eabi libnewlib-arm-none-eabi dataset-fashion-mnist nodejs npm)

# torch first, from the local CPU build, so the package's own dependencies never pull CUDA wheels
$(PIP_STAMP): pyproject.toml
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	@touch $@

$(RUNNER)/node_modules/.package-lock.json: $(RUNNER)/package-lock.json
	@command -v npm >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm)
	cd $(RUNNER) && npm ci --no-audit --no-fund --loglevel=error

test: setup
	$(PY) -m pytest -q

lint: setup
	ruff check powerprune tests bench

# The main job: baseline, both pruning methods at the paper's headline rate (4x), int8 .tflite,
# and cycles of every model on the virtual Pico. Finished steps are make targets, so a rerun resumes.
run: setup $(OUT)/base.tflite $(OUT)/magnitude-4x.tflite $(OUT)/apoz-4x.tflite
	@for m in base magnitude-4x apoz-4x; do \
	  powerprune inspect $(OUT)/$$m.tflite | tail -1; \
	  powerprune profile $(OUT)/$$m.tflite --images 3 || exit 1; \
	done

$(OUT)/base.pt:
	powerprune train --out $@

$(OUT)/magnitude-4x.pt: $(OUT)/base.pt
	powerprune prune $< --method magnitude --compression 4 --out $@

$(OUT)/apoz-4x.pt: $(OUT)/base.pt
	powerprune prune $< --method apoz --compression 4 --out $@

$(OUT)/%.tflite: $(OUT)/%.pt
	powerprune export $< --out $@

bench: setup
	$(PY) bench/bench_pruning.py

clean:
	rm -rf $(OUT) $(PIP_STAMP)
