# vla_adapter_ros — every target does its own set-up (idempotent), so a fresh clone needs only
#   make demo    the main job on the embedded default: the MuJoCo ALOHA with the demo
#                checkpoint (see README)
#   make test    set-up + the whole suite (colcon test: pytest + ruff), what CI runs
.PHONY: setup build test demo demo-checkpoint lint benchmarks clean

setup:
	scripts/setup.sh

build: setup

test:
	scripts/run_tests.sh

demo: setup
	scripts/demo.sh

demo-checkpoint: setup
	scripts/train_demo_checkpoint.sh

lint: setup
	.venv/bin/ruff check .

benchmarks: setup
	scripts/run_benchmarks.sh

clean:
	rm -rf build install log
