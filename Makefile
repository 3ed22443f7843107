# The two commands of README.md. Both install what they need first (scripts/bootstrap.sh).
PYTHON ?= python3

.PHONY: demo test bootstrap lint bench deb

bootstrap:
	bash scripts/bootstrap.sh

demo: bootstrap
	$(PYTHON) -m tests.vm.demo

test: bootstrap
	$(PYTHON) -m pytest -q tests

lint:
	$(PYTHON) -m ruff check bootguard tests bench c_ext
	$(PYTHON) -m mypy

bench: bootstrap
	for b in bench/*.py; do $(PYTHON) $$b || exit 1; done

# dist/bootguard_<version>_<arch>.deb, built with debhelper for Debian's python3 (docs/install.md).
deb:
	sh scripts/build-deb.sh
