.PHONY: demo test lint bench
# The two commands (see README): run the whole system with demo data, and run the tests.
demo:
	@scripts/demo.sh
test:
	@scripts/test.sh
lint:
	@.venv/bin/ruff check . && .venv/bin/ruff format --check .
