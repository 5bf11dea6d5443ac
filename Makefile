# The README's commands. Each target first makes sure .venv matches the lock.
.PHONY: setup run test ui lock lock-tfjs

setup:
	@bin/setup

run: setup          ## run the pipeline on the data in params.yaml (default: scikit-learn digits)
	.venv/bin/bakeoff run

test: setup         ## lint and every test tier (slow tests included)
	.venv/bin/python -m pytest

ui: setup           ## the MLflow UI on http://127.0.0.1:5000
	.venv/bin/bakeoff ui

lock: setup         ## regenerate the lock after a deliberate dependency change
	.venv/bin/uv pip compile pyproject.toml --extra dev --python-version 3.10 \
	  --python-platform x86_64-manylinux_2_36 --generate-hashes \
	  --constraint requirements/constraints-py310.txt -o requirements/lock-py310.txt

lock-tfjs: setup    ## regenerate the TensorFlow.js converter's own lock (.venv-tfjs)
	.venv/bin/uv pip compile requirements/tfjs.in --python-version 3.10 \
	  --python-platform x86_64-manylinux_2_36 --generate-hashes \
	  -o requirements/lock-tfjs-py310.txt
