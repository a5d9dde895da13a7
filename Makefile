.PHONY: setup test lint run bench

setup:
	@bash scripts/bootstrap.sh

test: setup
	.venv/bin/ruff check src tests bench scripts
	.venv/bin/pytest -q

lint: setup
	.venv/bin/ruff check src tests bench scripts
	.venv/bin/mypy

run: setup
	.venv/bin/cove run

bench: setup
	.venv/bin/pip install -q -e ".[bench]"
	.venv/bin/python bench/single_stream.py
	.venv/bin/python bench/concurrency.py
	.venv/bin/python bench/embed.py
