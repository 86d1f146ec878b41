# Blendset: `make demo` runs the main job, `make test` runs the tests. Both set everything up first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SCALE ?= small
BLENDER_CACHE ?= $(HOME)/.cache/blendset

.PHONY: setup demo test lint addon blender real-photos clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements/constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; Blendset needs CPython 3.11 (bpy 4.5 wheels exist only for it)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements/constraints.txt -e ".[blender,ray,data,dev]"
	touch $(STAMP)

# A real Blender binary (5.2 LTS) in a debootstrap chroot, cached in $(BLENDER_CACHE); optional for `make test`.
blender:
	bash scripts/provision_blender.sh

# The real photos of the boards benchmark: 26 of OpenCV's chessboard calibration samples, from Debian's opencv-doc
# (/usr/share/doc/opencv-doc/examples/data). Install them once, then run the benchmark (docs/boards.md).
real-photos:
	@test -f /usr/share/doc/opencv-doc/examples/data/left01.jpg && echo "real chessboard photos: already installed" || \
	{ command -v apt-get >/dev/null || { echo "error: apt-get not found; the real chessboard photos come from Debian's opencv-doc package"; exit 1; }; \
	  apt-get install -y opencv-doc || { echo "error: apt-get install opencv-doc failed (run as root, or apt-get update first)"; exit 1; }; }

demo: setup
	$(VENV)/bin/blendset demo --scale $(SCALE) --out runs/demo

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

addon: setup
	$(PY) scripts/build_addon.py --out dist

clean:
	rm -rf dist build runs .pytest_cache
