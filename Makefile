# Quickstart: `make demo` (embedded SQLite) and `make test`. Both install what they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: install generate check check-pythons test demo bench bench-migrate bench-adopt clean reliability schema-diff fidelity faults adversarial

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

## generate: analyse sql/ and write generated/ (untouched on any error)
generate: $(STAMP)
	$(PY) -m codegen generate

## check: generated/ is current (every statement also prepared on a scratch PostgreSQL
## database when ARAGORA_CODEGEN_POSTGRES_DSN or ARAGORA_TEST_POSTGRES_DSN names a server),
## every foreign key indexed (or marked intended), no migration number taken on BASE too,
## ruff, mypy, workflows
check: $(STAMP)
	ARAGORA_CODEGEN_POSTGRES_DSN="$${ARAGORA_CODEGEN_POSTGRES_DSN:-$${ARAGORA_TEST_POSTGRES_DSN:-}}" \
		$(PY) -m codegen check
	$(PY) -m codegen.fk_indexes
	@if git rev-parse --verify -q $(BASE) >/dev/null; then \
		$(PY) -m codegen.branches --base $(BASE); \
	else echo "migration numbers not compared: no $(BASE) in this checkout"; fi
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/zizmor --offline --quiet .github/workflows
	$(VENV)/bin/pre-commit validate-config .pre-commit-config.yaml
	$(MAKE) --no-print-directory check-pythons

## check-pythons: generated/ is byte-identical under every other Python the machine has
## (3.12, 3.13 through pyenv); each gets a venv of its own with the generator installed
OTHER_PYTHONS ?= 3.12 3.13
check-pythons:
	@root=$$(pyenv root 2>/dev/null || echo /nonexistent); \
	for v in $(OTHER_PYTHONS); do \
		py=$$(ls -d $$root/versions/$$v*/bin/python3 2>/dev/null | head -1); \
		if [ -z "$$py" ]; then \
			if [ "$$CI" = true ]; then echo "CI=true requires Python $$v (pyenv)"; exit 1; fi; \
			echo "generated/ not compared under Python $$v: not installed"; continue; fi; \
		venv=build/venv-$$v; \
		[ -x $$venv/bin/python ] || $$py -m venv $$venv; \
		$$venv/bin/pip install --quiet -e '.[codegen]' 2>&1 | grep -v '^WARNING' || true; \
		echo "codegen check under Python $$v"; \
		$$venv/bin/python -m codegen check || exit 1; \
	done

## test: the whole suite, SQLite and PostgreSQL (CI=true makes PostgreSQL mandatory), in two
## worker processes, a test file to each: every worker has its own database and servers;
## then the repository tests and every generated query again through a PgBouncer in
## transaction mode, once more through one in session mode, and once more with the SQLite
## side encrypted (SQLCipher)
POOLED_TESTS := tests/generated tests/differential/test_differential.py
test: $(STAMP)
	$(VENV)/bin/pytest --numprocesses 2 --dist loadfile
	for mode in transaction session; do \
		ARAGORA_TEST_POOLER=$$mode ARAGORA_DIFF_EXAMPLES=6 $(VENV)/bin/pytest \
			--numprocesses 2 --dist loadfile $(POOLED_TESTS) || exit 1; \
	done
	ARAGORA_TEST_SQLITE_KEY=make-test-key ARAGORA_DIFF_EXAMPLES=6 $(VENV)/bin/pytest \
		--numprocesses 2 --dist loadfile $(POOLED_TESTS)

## demo: generate, migrate an embedded SQLite database under .nomic/, run the example app
demo: $(STAMP)
	$(PY) -m codegen generate
	$(PY) examples/demo.py

## bench: the benchmark suite (never part of `make test`); results in bench/results/
bench: $(STAMP)
	$(PY) -m bench.run
	$(PY) -m bench.sqlcipher
	$(PY) -m bench.encrypted_columns
	$(PY) -m bench.jobs
	$(PY) -m bench.inline_reads
	$(PY) -m bench.sync --capture-only
	$(PY) -m bench.charts

## bench-sync: the sync's capture cost, lag at 200 changes/s and catch-up on a 1,000,000-change backlog
bench-sync: $(STAMP)
	$(PY) -m bench.sync

## bench-migrate: migrate-data against pgloader on a 1,000,000-row SQLite file
bench-migrate: $(STAMP)
	$(PY) -m bench.migrate_data
	$(PY) -m bench.charts

## bench-adopt: adopt --verify of a legacy layout with a 1,000,000-row audit log, both targets
bench-adopt: $(STAMP)
	$(PY) -m bench.adopt

clean:
	rm -rf build .mypy_cache .ruff_cache .pytest_cache

## fidelity: every query on both backends at 300 hypothesis examples per store
fidelity: $(STAMP)
	ARAGORA_DIFF_RANDOM=1 ARAGORA_DIFF_EXAMPLES=300 $(VENV)/bin/pytest -s -q tests/differential
	@head -3 build/fidelity.md
	@echo "one page: build/fidelity-summary.md (chart: build/fidelity.svg)"

## reliability: the migration fault tests at full size (20 concurrent rounds), with figures
reliability: $(STAMP)
	ARAGORA_RELIABILITY_ROUNDS=20 $(VENV)/bin/pytest -s -q tests/reliability | grep -E 'FIGURE|passed|failed'

## schema-diff: Markdown review of schema changes since BASE (default origin/main)
BASE ?= origin/main
schema-diff: $(STAMP)
	$(PY) -m codegen.review --base $(BASE)

## faults: runtime fault tests at full size (30 s loads, 10,000 replica pairs, 100 SIGKILLs)
faults: $(STAMP)
	ARAGORA_FAULT_SECONDS=30 $(VENV)/bin/pytest -s -q tests/faults tests/runtime/test_pg_runtime.py tests/runtime/test_cloud_sync.py | grep -E 'FIGURE|passed|failed'

## adversarial: hostile inputs, secrets, files and concurrent migrators at 10 rounds
adversarial: $(STAMP)
	ARAGORA_ADVERSARIAL_ROUNDS=10 $(VENV)/bin/pytest -s -q tests/adversarial | grep -E 'FIGURE|passed|failed'
