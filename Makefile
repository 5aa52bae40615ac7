# object_permanence — the README's commands. Every target does its own set-up.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
ROOT := $(CURDIR)
# Every run keeps DDS on loopback, on a domain of its own (tests pick a random one per run).
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export ROS_DOMAIN_ID ?= $(shell echo $$(( $$RANDOM % 100 + 101 )))
export PYTHONUNBUFFERED := 1
ENV := source $(ROOT)/scripts/ros_env.sh
# The demo runs a held-out seed (>= 1000): everything was tuned on seeds 0-999.
DEMO_ARGS ?= --scenario cluttered --seed 1000 --frames 300
EVAL_ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup build demo eval eval-persistence train-persistence bench test test-core clean

setup:
	bash scripts/setup_env.sh

build: setup

demo: setup
	$(ENV) && python -m object_permanence.tools.demo --out out/demo $(DEMO_ARGS)

# Every scenario x 5 held-out seeds (realistic and hard) and TUD-Campus, ours vs trackers' peers.
eval: setup
	$(ENV) && python -m object_permanence.tools.eval_tracking --out out/eval $(EVAL_ARGS)

# The learned persistence filter: the shipped weights' data (train seeds 0-11, validation 12-13,
# held-out 1000-1003); training is deterministic and writes models/persistence/ (weights, model
# card, curves). PERSISTENCE_DATA_ARGS= (empty) uses the tools' larger default seed ranges.
PERSISTENCE_DATA_ARGS ?= --train-seeds 0-11 --val-seeds 12-13 --test-seeds 1000-1003 --nuisance-seeds 1000-1003
train-persistence: setup
	$(ENV) && python -m object_permanence.tools.make_persistence_data --out out/persistence/data $(PERSISTENCE_DATA_ARGS)
	$(ENV) && python -m object_permanence.tools.train_persistence

# Transformer vs min-hits vs existence probability vs gradient boosting on held-out seeds and a
# held-out nuisance setting -> out/eval/persistence.json / .md
eval-persistence: setup
	$(ENV) && python -m object_permanence.tools.eval_persistence

# Timings (not tests): the world model against trackers' peers, the composed pipeline at 30 Hz.
bench: setup
	$(ENV) && python -m object_permanence.tools.bench_world_model --out out/bench
	$(ENV) && python -m object_permanence.tools.bench_pipeline --out out/bench
	$(ENV) && python -m object_permanence.tools.bench_persistence

# Inside make test the ROS tests must run: a missing rclpy is an error, not a skip.
test: setup
	$(ENV) && OBJECT_PERMANENCE_REQUIRE_ROS=1 python -m pytest test $(PYTEST_ARGS)

# The ROS-free core alone (no build needed beyond the venv).
test-core: setup
	$(ENV) && python -m pytest test/core $(PYTEST_ARGS)

clean:
	rm -rf build install log out build.log .venv
