# Two commands on a fresh clone:  make run PHOTOS=path/to/photos   and   make test
PYTHON ?= python3
VENV   ?= .venv
PHOTOS ?= ../shared/data/humans
OUT    ?= out
ARGS   ?=
# which torch: cpu (PyTorch's CPU build), cuda (the standard build) or auto (cuda where
# nvidia-smi answers); tools/install-torch says which it took and from where
TORCH  ?= auto
TORCH_VERSION ?= 2.13.0
BIN    := $(VENV)/bin

.PHONY: run test test-fast install install-study bench clean

install: $(VENV)/.installed

# torch first, the build TORCH chose, so that nothing after pulls another one.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	tools/install-torch $(BIN)/python $(TORCH) $(TORCH_VERSION)
	$(BIN)/python -m pip install -q -e ".[test,heif,ray,study,dlib,dlib-models]"
	$(MAKE) install-study
	$(BIN)/python -m facedist.warmup  # compile the numba kernels once, into their disk cache
	touch $@

# The bench's peers, facenet-pytorch and face_recognition, pin old torch and a dlib to build
# from source: installed without their pins (their other needs are the study extra's).
install-study:
	$(BIN)/python -m pip install -q --no-deps facenet-pytorch==2.6.0 face_recognition==1.3.0

run: install
	$(BIN)/facedist run "$(PHOTOS)" --out "$(OUT)" $(ARGS)

# The browser tests of the HTML report need Debian's chromium, the XMP tests its exiftool:
# installed here where missing.
# A worker per core, a test module to a worker (the Ray tests must not meet: tests/test_ray_engine.py).
XDIST ?= -n auto --dist loadfile
test: install
	tools/install-chromium
	tools/install-exiftool
	$(BIN)/python -m pytest -q -rs $(XDIST) $(ARGS)

# The fast tier, for development: no shared data, no model runs (`make test` is what CI runs).
test-fast: install
	FACEDIST_SHARED=/nonexistent $(BIN)/python -m pytest -q -m "not slow" $(XDIST) $(ARGS)

bench: install
	$(BIN)/facedist bench "$(PHOTOS)" --out bench/results $(ARGS)

clean:
	rm -rf $(VENV) out
