# OpenVPP — every command the README, CI and pre-commit use.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(BIN)):$(PATH)

RUST_SOURCES := $(shell find rust -path '*/fuzz' -prune -o \( -name '*.rs' -o -name Cargo.toml \) -print) Cargo.toml
EXTENSION := python/openvpp/_rust.abi3.so

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "maturin>=1.9,<2"
	$(BIN)/maturin develop --quiet --extras dev
	touch $@

$(EXTENSION): $(STAMP) $(RUST_SOURCES)
	$(BIN)/maturin develop --quiet --skip-install
	touch $@

.PHONY: venv
venv: $(STAMP) ## Create .venv with every Python dependency

JS_STAMP := tests/js/node_modules/.installed

$(JS_STAMP): tests/js/package.json tests/js/package-lock.json
	npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
	touch $@

.PHONY: js-deps
js-deps: $(JS_STAMP) ## The JavaScript client tests' dependencies, exactly as tests/js/package-lock.json pins them

UI := python/openvpp/web/ui
UI_STAMP := $(UI)/node_modules/.installed
UI_SOURCES := $(shell find $(UI)/src $(UI)/public -type f) $(UI)/index.html $(UI)/vite.config.ts $(UI)/tsconfig.json

$(UI_STAMP): $(UI)/package.json $(UI)/package-lock.json
	npm ci --prefix $(UI) --no-audit --no-fund --loglevel=error
	touch $@

.PHONY: web
web: $(UI_STAMP) ## Type-check and build the web app's front end into python/openvpp/web/static (committed)
	npm run --prefix $(UI) --silent build

.PHONY: check-web
check-web: $(UI_STAMP) ## Fail if the committed front-end build is not what the sources build to
	rm -rf build/web-check
	cd $(UI) && npx tsc --noEmit && npx vite build --logLevel warn --outDir ../../../../build/web-check --emptyOutDir
	diff -r build/web-check python/openvpp/web/static || \
		{ echo "python/openvpp/web/static is stale: run \`make web\` and commit it"; exit 1; }

.PHONY: build
build: $(EXTENSION) ## Build the Rust extension into the package (debug, deps optimised)

.PHONY: gen-protos
gen-protos: $(STAMP) ## Regenerate python/openvpp/v1 from proto/
	$(BIN)/python proto/generate.py

.PHONY: check-protos
check-protos: $(STAMP) ## Fail if the committed generated code is stale
	$(BIN)/python proto/generate.py --check

.PHONY: check-deploy
check-deploy: $(STAMP) ## Validate deploy/ offline: Kubernetes manifests (bundled schemas, strict) and the compose file
	$(BIN)/kubernetes-validate --strict --quiet deploy/kubernetes/*.yaml
	OPENVPP_DB_PASSWORD=unset $(BIN)/check-jsonschema --builtin-schema vendor.compose-spec deploy/compose.yaml

.PHONY: lint
lint: lint-python lint-rust stubtest ## ruff, mypy, import contracts, stubtest, cargo fmt, cargo clippy

.PHONY: lint-python
lint-python: $(STAMP) ## ruff, mypy and the package layer contracts (no Rust build needed)
	$(BIN)/ruff check python tests proto
	$(BIN)/ruff format --check python tests proto
	$(BIN)/mypy
	$(BIN)/lint-imports

.PHONY: lint-rust
lint-rust: ## cargo fmt and clippy
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

.PHONY: stubtest
stubtest: build ## The committed stub matches the built extension exactly
	$(BIN)/python -m mypy.stubtest openvpp._rust --allowlist rust/openvpp-py/stubtest-allowlist.txt

.PHONY: check
check: lint-python build ## The fast loop: ruff, mypy and the unit tests (about two minutes)
	$(BIN)/pytest tests/unit -q

.PHONY: fmt
fmt: $(STAMP) ## Format Python and Rust in place
	$(BIN)/ruff check --fix python tests proto
	$(BIN)/ruff format python tests proto
	cargo fmt --all

.PHONY: cargo-test
cargo-test: ## Rust unit tests and the shared vectors
	cargo test --workspace --exclude openvpp-py

.PHONY: pytest
pytest: build js-deps ## Python unit and integration tests (SQLite and PostgreSQL), and the JavaScript client tests they run
	$(BIN)/pytest

MONEY_EXAMPLES ?= 500
FUZZ_REQUESTS ?= 20000

.PHONY: api-fuzz
api-fuzz: build ## The API fuzz battery at length (FUZZ_REQUESTS hostile requests per storage backend)
	OPENVPP_FUZZ_REQUESTS=$(FUZZ_REQUESTS) $(BIN)/pytest tests/integration/test_api_fuzz.py -k hostile -s --timeout=0

.PHONY: money-soak
money-soak: build ## The end-to-end money property test at length (MONEY_EXAMPLES per storage backend)
	OPENVPP_MONEY_EXAMPLES=$(MONEY_EXAMPLES) $(BIN)/pytest tests/integration/test_money_property.py \
		--hypothesis-show-statistics --timeout=0

FUZZ_SECONDS ?= 20
CARGO_TOOLS := $(abspath .cargo-tools)

.PHONY: fuzz
fuzz: ## Short cargo-fuzz run of every target (nightly toolchain; FUZZ_SECONDS each)
	@if ! rustup run nightly rustc --version >/dev/null 2>&1; then \
		echo "fuzz: no nightly toolchain installed; skipping the fuzz run"; exit 0; fi; \
	set -e; \
	if [ ! -x $(CARGO_TOOLS)/bin/cargo-fuzz ]; then \
		cargo install cargo-fuzz --locked --quiet --root $(CARGO_TOOLS); fi; \
	cd rust/openvpp-core && for target in readings settlement; do \
		PATH=$(CARGO_TOOLS)/bin:$$PATH cargo +nightly fuzz run $$target -- \
			-max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 2>&1 | tail -n 3; \
		test $${PIPESTATUS[0]} -eq 0; \
	done

.PHONY: bench
bench: $(STAMP) ## Benchmarks against yardsticks in the same run (fat-LTO build); writes build/bench/*.json
	$(BIN)/maturin develop --quiet --skip-install --profile bench-release
	$(BIN)/python -m tests.bench.core
	$(BIN)/python -m tests.bench.routing
	$(BIN)/python -m tests.bench.settlement
	$(BIN)/python -m tests.bench.latency
	$(BIN)/python -m tests.bench.demo
	$(BIN)/python -m tests.bench.replicas
	$(BIN)/python -m tests.bench.fairness
	$(BIN)/python -m tests.bench.fairness --huge
	$(BIN)/python -m tests.bench.registry_tree

.PHONY: test
test: lint check-protos check-deploy check-web cargo-test pytest fuzz ## Everything CI runs

.PHONY: demo
demo: build ## The main job on the embedded defaults
	$(BIN)/openvpp demo --out demo-out

.PHONY: serve
serve: build ## Run the server on 127.0.0.1:50051 with data in ./.openvpp
	$(BIN)/openvpp serve

.PHONY: clean
clean: ## Remove build products, caches and demo output
	rm -rf target $(VENV) demo-out build .pytest_cache .mypy_cache .ruff_cache .hypothesis $(EXTENSION) \
		rust/openvpp-core/fuzz/target tests/js/node_modules $(UI)/node_modules
