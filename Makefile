# Cradle: the two commands a person needs are `make demo` and `make test`.
# Both run `make setup` first; setup is idempotent and takes about a second when done.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
JARS := .jars
MVN := mvn -q -B -f conf/jvm/pom.xml
PYTEST_ARGS ?=

.PHONY: setup prereqs demo test lint bench clean

setup: prereqs $(VENV)/.installed $(JARS)/.fetched

prereqs:
	@command -v $(PYTHON) >/dev/null || { echo "setup: Python 3.11 is missing (looked for '$(PYTHON)' on PATH)"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { echo "setup: '$(PYTHON)' is not Python 3.11"; exit 1; }
	@command -v java >/dev/null || { echo "setup: Java 17+ is missing (no 'java' on PATH)"; exit 1; }
	@v=$$(java -XshowSettings:properties -version 2>&1 | sed -n 's/ *java.specification.version = //p'); \
	  [ "$${v%%.*}" -ge 17 ] 2>/dev/null || { echo "setup: Java 17+ is required, found Java '$$v'"; exit 1; }
	@command -v mvn >/dev/null || { echo "setup: Maven is missing (no 'mvn' on PATH); it fetches the Delta Lake jars"; exit 1; }

$(VENV)/.installed: pyproject.toml
	@echo "setup: creating $(VENV) and installing Cradle with its pinned dependencies (about a minute the first time)"
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --upgrade pip
	@$(BIN)/pip install -q -e '.[dev]'
	@touch $@

$(JARS)/.fetched: conf/jvm/pom.xml
	@echo "setup: fetching JVM jars (Delta Lake) with Maven into $(JARS)/"
	@rm -rf $(JARS) && mkdir -p $(JARS)
	@$(MVN) dependency:copy-dependencies -DoutputDirectory=$(CURDIR)/$(JARS)
	@# GraphFrames is optional: some Maven mirrors do not serve io.graphframes at all.
	@$(MVN) -P graphframes dependency:copy-dependencies -DoutputDirectory=$(CURDIR)/$(JARS) \
	  -DincludeGroupIds=io.graphframes >/dev/null 2>&1 \
	  && echo "setup: GraphFrames JVM jar fetched" \
	  || echo "setup: note: io.graphframes is not served by your Maven repository; connected components will use Cradle's built-in engine (see README)"
	@touch $@

demo: setup
	$(BIN)/cradle demo

lint: setup
	$(BIN)/ruff check lib jobs tests bench airflow_dags notebooks

test: setup lint
	$(BIN)/pytest $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m bench.run

clean:
	rm -rf lakehouse .pytest_cache spark-warehouse metastore_db derby.log
