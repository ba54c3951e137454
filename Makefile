# The course's commands. The two that matter (README):
#   make lab    install what is missing, start the brokers natively, open JupyterLab
#   make test   what CI runs: lint, unit tests, labs, and every notebook against real brokers
# BROKERS=external skips the native brokers (docker compose, a classroom cluster): the
# addresses then come from RABBITMQ_URL, REDIS_URL and KAFKA_BOOTSTRAP_SERVERS.

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BROKERS ?= native
# tests/conftest.py reads it: BROKERS=external skips the tests marked `native`.
export BROKERS
NOTEBOOK_TIMEOUT ?= 180
NBVAL := $(PY) -m pytest -p no:cacheprovider --nbval-lax --nbval-current-env \
	--nbval-cell-timeout=$(NOTEBOOK_TIMEOUT) -q
# Each test run gets its own namespace, so leftovers are attributable to it.
# (`:=` so it is computed once: every step must see the same namespace.)
ifeq ($(origin COURSE_NAMESPACE),undefined)
COURSE_NAMESPACE := test$(shell date +%s)
endif
export COURSE_NAMESPACE
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: help install install-system install-python brokers stop status lab test cluster stop-cluster \
	classroom stop-classroom test-classroom classroom-capacity \
	lint unit labs nav strip notebooks notebooks-twice test-external test-next test-latest binder-check binder-smoke browser-test screenshot measure clean-state site grade

help:
	@sed -n '1,6p' Makefile

install: install-system install-python

install-system:
	@bash tools/install_system.sh

# Quiet installs: one line per step. pip's full output goes to $(INSTALL_LOG) (apt's to
# artifacts/install-system.log); a step that fails names its log and shows its last lines.
INSTALL_LOG := $(CURDIR)/artifacts/install-python.log
LOGGED = >> $(INSTALL_LOG) 2>&1 || { echo "$(1) failed; the full log is $(INSTALL_LOG):" >&2; \
	tail -n 15 $(INSTALL_LOG) >&2; exit 1; }

$(PY):
	@mkdir -p $(dir $(INSTALL_LOG)) && : > $(INSTALL_LOG)
	@echo "python: creating $(VENV) (log: $(INSTALL_LOG))"
	@python3 -m venv $(VENV) $(call LOGGED,python3 -m venv $(VENV))
	@$(PY) -m pip install --upgrade pip $(call LOGGED,pip install --upgrade pip)

# Development and tests need requirements-dev.txt (the learner's requirements.txt and the
# test tools); Binder and the compose image install requirements.txt only.
$(VENV)/.installed: $(PY) requirements.txt requirements-dev.txt pyproject.toml
	@mkdir -p $(dir $(INSTALL_LOG))
	@echo "python: installing requirements-dev.txt and the course's package (log: $(INSTALL_LOG))"
	@$(PY) -m pip install -r requirements-dev.txt -e . $(call LOGGED,pip install -r requirements-dev.txt)
	@touch $@

install-python: $(VENV)/.installed

ifeq ($(BROKERS),native)
brokers: install
	@$(PY) -m brokerlab.backstage start
	@$(PY) -m brokerlab.backstage fetch perftest >/dev/null
else
brokers: install-python
	@echo "BROKERS=$(BROKERS): using brokers at the environment's addresses"
	$(PY) -c 'import brokerlab; [print(s) for s in brokerlab.require()]'
endif

stop:
	@if [ -x $(PY) ]; then $(PY) -m brokerlab.backstage classroom stop $(if $(CLASSROOM_DIR),--dir "$(CLASSROOM_DIR)"); \
	if [ -d $(TEST_CLASSROOM) ]; then $(PY) -m brokerlab.backstage classroom stop --dir $(TEST_CLASSROOM); fi; \
	$(PY) -m brokerlab.backstage cluster stop && $(PY) -m brokerlab.backstage stop; \
	else echo "nothing installed"; fi

# Three-node clusters of each broker (module 04); `make stop` stops them too.
ifeq ($(BROKERS),native)
cluster: install
	$(PY) -m brokerlab.backstage cluster start
else
cluster: install-python
	@echo "BROKERS=$(BROKERS): using the clusters at the environment's addresses"
endif

stop-cluster:
	@if [ -x $(PY) ]; then $(PY) -m brokerlab.backstage cluster stop; fi

# Classroom mode: the three brokers TLS-only beside the course's own, one isolated account
# per student of ROSTER (CSV: login[,name]); CLASSROOM_DIR (default <state folder>/classroom)
# holds the CA and env/<login>.env, each student's settings; CLASSROOM_HOST (default
# 127.0.0.1) is the name or address students connect to. `make stop` stops it too.
classroom: install
	@test -n "$(ROSTER)" || { echo "usage: make classroom ROSTER=roster.csv [CLASSROOM_DIR=dir]" >&2; exit 1; }
	$(PY) -m brokerlab.backstage classroom start --roster "$(ROSTER)" \
		$(if $(CLASSROOM_DIR),--dir "$(CLASSROOM_DIR)") $(if $(CLASSROOM_HOST),--host "$(CLASSROOM_HOST)")

stop-classroom:
	@if [ -x $(PY) ]; then $(PY) -m brokerlab.backstage classroom stop \
		$(if $(CLASSROOM_DIR),--dir "$(CLASSROOM_DIR)"); fi

# Student isolation on each broker: a classroom of two in a temporary folder (or the one
# running from CLASSROOM_DIR); the figures go to artifacts/classroom-isolation.txt. Under
# `make test` the classroom of tests/classroom-roster.csv starts afresh in build/ (never an
# instructor's own) and keeps running, so 06.01 uses it; binder-check and `make stop` stop it.
TEST_CLASSROOM := $(CURDIR)/build/test-classroom
test-classroom: install
ifeq ($(filter test,$(MAKECMDGOALS)),test)
	$(PY) -m brokerlab.backstage classroom stop --dir $(TEST_CLASSROOM) && rm -rf $(TEST_CLASSROOM)
	$(PY) -m brokerlab.backstage classroom start --roster tests/classroom-roster.csv --dir $(TEST_CLASSROOM)
	BROKERLAB_TEST_CLASSROOM=$(TEST_CLASSROOM) $(PY) -m pytest -p no:cacheprovider -q -s tests/test_classroom.py
else
	BROKERLAB_TEST_CLASSROOM=$(if $(CLASSROOM_DIR),$(abspath $(CLASSROOM_DIR)),1) \
		$(PY) -m pytest -p no:cacheprovider -q -s tests/test_classroom.py
endif

# How many students one machine carries: a classroom of CAPACITY_STUDENTS in a temporary
# folder, each hands in one solved lab, all graded two at a time while memory and every name
# on the brokers are sampled; artifacts/classroom-capacity.json and .md. Not in `make test`
# (30 students: about ten minutes).
CAPACITY_STUDENTS ?= 30
classroom-capacity: install
	$(PY) tools/classroom_capacity.py --students $(CAPACITY_STUDENTS)

status: install-python
	$(PY) -m brokerlab.backstage status
	@$(PY) -m brokerlab.backstage cluster status

lab: brokers
	@echo "JupyterLab: http://127.0.0.1:8888/lab (Ctrl-C stops it; make stop stops the brokers)"
	@$(PY) -m jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.port=8888 \
		--ServerApp.root_dir=$(CURDIR) $(if $(filter 0,$(shell id -u)),--allow-root) \
		notebooks/00.00-index.ipynb

# ---- tests (each step also runs on its own) ----

test: export WITH_BROWSER := 1
test: export BROKERLAB_CLASSROOM_DIR := $(TEST_CLASSROOM)
test: export WITH_NEXT := 1
test: brokers cluster lint unit $(if $(filter native,$(BROKERS)),test-classroom) binder-smoke notebooks-twice site test-external browser-test $(if $(filter native,$(BROKERS)),test-next binder-check)
	@echo "make test: all green"

# Pinned linters for the CI and compose files: actionlint from the Go module proxy (built
# into the venv once), check-jsonschema from PyPI against the Compose Specification's schema
# vendored in tools/schemas (no network at lint time).
ACTIONLINT_VERSION := v1.7.12
CHECK_JSONSCHEMA_VERSION := 0.39.0
$(VENV)/bin/actionlint: | $(PY)
	@command -v go >/dev/null || { echo "make lint needs Go to build actionlint: sudo apt-get install -y golang-go"; exit 1; }
	GOBIN=$(abspath $(VENV))/bin go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)

$(VENV)/.check-jsonschema-$(CHECK_JSONSCHEMA_VERSION): | $(PY)
	$(PY) -m pip install -q check-jsonschema==$(CHECK_JSONSCHEMA_VERSION)
	touch $@

lint: install-python $(VENV)/bin/actionlint $(VENV)/.check-jsonschema-$(CHECK_JSONSCHEMA_VERSION)
	$(VENV)/bin/actionlint .github/workflows/*.yml
	$(VENV)/bin/check-jsonschema --schemafile tools/schemas/compose-spec.json \
		docker-compose.yml docker-compose.cluster.yml
	$(PY) -m ruff check src tools tests notebooks solutions labs
	$(PY) -m nbstripout --keep-id --verify notebooks/*.ipynb solutions/*.ipynb labs/*.ipynb
	$(PY) tools/make_labs.py --check
	$(PY) tools/make_nav.py --check
	$(PY) tools/lint_notebooks.py

# tests/test_labs.py also runs every solution; `make test` leaves that to nbval (twice).
unit: install-python
	$(PY) -m pytest -p no:cacheprovider -q tests $(if $(filter test,$(MAKECMDGOALS)),--deselect tests/test_labs.py::test_solution_passes)

# binder/start hands over at once and starts the brokers in the background, leaving
# <state folder>/starting while it runs: wait for that (bounded), then every broker must answer.
BINDER_SMOKE := from brokerlab.checks import wait_until; from brokerlab.settings import get_settings; \
	import brokerlab; marker = get_settings().state_dir / "starting"; \
	assert wait_until(lambda: not marker.exists(), timeout=320, interval=1), marker; \
	[print(s) for s in brokerlab.require("redis", "rabbitmq", "kafka")]
binder-smoke: install-python
ifeq ($(BROKERS),native)
	binder/start python -c '$(BINDER_SMOKE)'
endif

notebooks: install-python
	$(NBVAL) notebooks solutions

# Every notebook twice in a row, from fresh kernels; then nothing may be left behind.
# The second run keeps what it executed in build/executed/ for `make site` (tools/nbval_keep.py).
# tools/notebook_lanes.py runs module 04 (the clusters) and 06.01 beside the lessons on the single
# brokers, and the measuring lessons alone.
LANES := $(PY) tools/notebook_lanes.py
notebooks-twice: install-python
	$(LANES) '$(NBVAL)' notebooks solutions
	rm -rf build/executed && PYTHONPATH=tools $(LANES) '$(NBVAL) -p nbval_keep --keep-executed build/executed' notebooks solutions
	$(PY) tools/leftovers.py --prefix "$(COURSE_NAMESPACE)-"

# The external path (docker compose, a classroom cluster) proven here without Docker: every
# notebook and solution that restarts a broker or kills a node runs once more with
# BROKERS=external and the fault command templates set, as docker-compose.yml sets them, but
# calling the launcher's command line. brokerlab.faults takes the same code path as under
# compose: run the template, then wait until the broker or node answers.
LAUNCHER_CLI := $(abspath $(PY)) -m brokerlab.backstage
FAULT_CALL := (faults|ct)\.(restart|kill_node|start_node)[(]
FAULT_NOTEBOOKS = $(shell grep -lE '$(FAULT_CALL)' notebooks/*.ipynb solutions/*.ipynb)
ifeq ($(BROKERS),native)
test-external: install-python
	BROKERS=external \
	BROKERLAB_RESTART_COMMAND='$(LAUNCHER_CLI) restart {broker} $$([ {mode} = crash ] && echo --crash)' \
	BROKERLAB_KILL_NODE_COMMAND='$(LAUNCHER_CLI) node kill {node}' \
	BROKERLAB_START_NODE_COMMAND='$(LAUNCHER_CLI) node start {node}' \
	$(LANES) '$(NBVAL)' $(FAULT_NOTEBOOKS)
	$(PY) tools/leftovers.py --prefix "$(COURSE_NAMESPACE)-"
else
test-external:
	@echo "BROKERS=$(BROKERS): the notebooks already ran through the fault command templates"
endif

# Every notebook and solution that meets Redis or RabbitMQ once more on the next broker
# generation: Debian 13's RabbitMQ 4.0 and Redis 8.0, run from a debootstrapped root under
# the state folder (built once, cached; needs root). The native Redis and RabbitMQ step
# aside meanwhile and come back after, whatever happened; Kafka and module 04's clusters
# stay the native ones, so their lessons are left out (`next_generation.py notebooks` lists
# what runs). Lessons restart brokers through BROKERLAB_RESTART_COMMAND.
NEXT := $(PY) tools/next_generation.py
NATIVE := $(PY) -m brokerlab.backstage
NEXT_RESTART := cd $(CURDIR) && $(abspath $(PY)) tools/next_generation.py restart {broker} --mode {mode}
test-next: export WITH_NEXT := 1
test-next: install-system install-python
	$(NEXT) build
	$(NATIVE) stop redis rabbitmq
	status=0; \
	if $(NEXT) start && $(NEXT) versions; then \
	  nbs=$$($(NEXT) notebooks) && [ -n "$$nbs" ] \
	    && BROKERLAB_RESTART_COMMAND='$(NEXT_RESTART)' $(NBVAL) $$nbs || status=1; \
	  $(PY) tools/leftovers.py --prefix "$(COURSE_NAMESPACE)-" || status=1; \
	else status=1; fi; \
	$(NEXT) stop || status=1; \
	$(NATIVE) start redis rabbitmq || status=1; \
	exit $$status

# The compose images' release lines (RabbitMQ 4.3, Redis 8.6), from Debian sid and
# experimental in the same trixie root. Not part of `make test`: those suites move.
test-latest:
	BROKERLAB_NEXT_LATEST=1 $(MAKE) test-next

# mybinder.org simulated: uid 1000, a 2 GiB / 1 CPU cgroup, binder/requirements.txt and
# postBuild as that user, binder/start must hand over to JupyterLab within 30 s, then every
# notebook inside those limits; reports peak memory (artifacts/binder-check.json). Needs
# root; the native brokers step aside first (same ports) and come back after.
# `make test` runs the lessons inside Binder's limits; the solutions already run twice natively
# (and those on Redis or RabbitMQ once more on the next generation). BINDER_FOLDERS="notebooks
# solutions" for all.
BINDER_FOLDERS ?= notebooks
binder-check: install-python
	$(PY) -m brokerlab.backstage classroom stop --dir $(TEST_CLASSROOM)
	$(PY) -m brokerlab.backstage cluster stop
	$(PY) -m brokerlab.backstage stop
	status=0; sudo_=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	$$sudo_ $(PY) tools/binder_check.py --folders $(BINDER_FOLDERS) || status=1; \
	$(PY) -m brokerlab.backstage start || status=1; \
	exit $$status

# The control panels in a real browser: Debian's chromium driven by Playwright (< 3 min).
# Saves artifacts/control-panel.png (ignored). Learners need no browser of the course's own.
# CHROMIUM: Debian's chromium, Google Chrome's .deb, or the one `playwright install` fetched.
CHROMIUM ?= $(firstword $(wildcard /usr/bin/chromium /usr/bin/google-chrome-stable \
	$(HOME)/.cache/ms-playwright/chromium-*/chrome-linux*/chrome))
define NO_BROWSER
browser-test needs Chromium or Google Chrome (only for this test; learners need none).
  Debian:  sudo apt-get install -y chromium
  Ubuntu:  its chromium package only installs the snap, whose confinement (its own /tmp)
           keeps Playwright from driving it reliably; use
           $(PY) -m playwright install --with-deps chromium
           (or Google Chrome's .deb from https://www.google.com/chrome/), then make test again.
  Any:     make browser-test CHROMIUM=/path/to/chrome
endef
export NO_BROWSER
browser-test: install-python
	@test -n "$(CHROMIUM)" && test -x "$(CHROMIUM)" || { echo "$$NO_BROWSER" >&2; exit 1; }
	$(PY) tools/browser_test.py --chromium $(CHROMIUM)

# Refresh the README's screenshot on purpose (tests write theirs to artifacts/ only).
screenshot: browser-test
	cp artifacts/control-panel.png docs/control-panel.png
	@echo "docs/control-panel.png refreshed; review it and commit it"

# The course website in build/site/ (tools/make_site.py): every lesson and solution with the
# outputs of `make notebooks-twice`'s second run, every lab as handed out; sphinx-build -W,
# then every notebook has a page, no page shows a traceback, every relative link resolves.
# Its tools (requirements-site.txt) go into the venv only here, not into requirements.txt.
# Under `make test` and in CI a notebook without an executed copy is an error.
$(VENV)/.site-$(shell cksum < requirements-site.txt | cut -d' ' -f1): | $(PY)
	$(PY) -m pip install -q -r requirements-site.txt
	touch $@

site: install-python $(VENV)/.site-$(shell cksum < requirements-site.txt | cut -d' ' -f1)
	$(PY) tools/make_site.py $(if $(filter test,$(MAKECMDGOALS))$(CI),--require-executed)

# ---- grading ----

# Grade submitted labs: SUBMISSIONS/<login>/<lab>.ipynb (or nbgrader's submitted/ folder),
# each from a fresh kernel in the student's namespace; grades.csv, report.md and the
# executed notebooks go to $(GRADES). CLASSROOM_DIR: the classroom's env files.
GRADES ?= grades
grade: install-python
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=dir [GRADES=dir] [CLASSROOM_DIR=dir]" >&2; exit 1; }
	$(PY) -m brokerlab.backstage grade "$(SUBMISSIONS)" --out "$(GRADES)" \
		$(if $(CLASSROOM_DIR),--classroom "$(CLASSROOM_DIR)")

# ---- maintenance ----

labs: install-python
	$(PY) tools/make_labs.py

nav: install-python
	$(PY) tools/make_nav.py

strip: install-python
	$(PY) -m nbstripout --keep-id notebooks/*.ipynb solutions/*.ipynb labs/*.ipynb

measure: brokers
	$(PY) tools/measure_stack.py

clean-state: stop
	rm -rf "$${BROKERLAB_STATE_DIR:-$$HOME/.local/state/brokerlab}"
