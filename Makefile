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
# sim: the detector simulator over the ground truth; yolo: the shipped YOLO (its int8 quantization, ONNX
# Runtime) on the rendered pixels (sim-time paced).
DETECTOR ?= sim
# out/demo for the simulator, out/demo_yolo for DETECTOR=yolo (one run does not overwrite the other's files)
DEMO_OUT ?= out/demo$(if $(filter-out sim,$(DETECTOR)),_$(DETECTOR),)
EVAL_ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup build demo eval eval-detector fit-detector-sim eval-persistence train-persistence export-persistence \
	train-detector train-reid export-reid \
	export-detector bench test test-core clean

setup:
	bash scripts/setup_env.sh

build: setup

demo: setup
	$(ENV) && python -m object_permanence.tools.demo --out $(DEMO_OUT) --detector $(DETECTOR) $(DEMO_ARGS)

# Every scenario x 20 held-out seeds 1000-1019 (realistic and hard) and TUD-Campus (60 seeds), ours vs
# trackers' peers -> out/eval/tracking.json, .md, .png (16 min on session 37's 2-core machine).
eval: setup
	$(ENV) && python -m object_permanence.tools.eval_tracking --out out/eval $(EVAL_ARGS)

# The trained detector and the learned re-ID embedding on held-out scenes / identities, and the
# detector simulator's statistics next to the trained detector's -> out/eval/detector.json,
# reid.json, detector_calibration.json/.md. Renders the detector data set first when missing.
eval-detector: setup
	$(ENV) && { test -f out/detector/data/data.yaml || python -m object_permanence.tools.make_detector_data --out out/detector/data --splits test; }
	$(ENV) && python -m object_permanence.tools.eval_reid
	$(ENV) && python -m object_permanence.tools.eval_detector --out out/eval

# The detector simulator's sim_yolo preset: fitted to the trained detector on rendered tuning scenes
# (seeds 40-41; ~25 min on 2 cores) -> out/eval/detector_fit.json / .md; the preset in
# core/detection/sim_detector_config.py holds the values it printed.
fit-detector-sim: setup
	$(ENV) && python -m object_permanence.tools.fit_detector_sim --out out/eval/detector_fit

# A YOLO trained from its YAML on rendered sim scenes (train seeds 0-29, val 900-901, test 1000-1004):
# stage 1 from the YAML, stage 2 from stage 1's best weights (no mosaic, low LR); ships
# models/detector/{sim_yolo.pt,MODEL_CARD.md,training_curves.png}, then exports ONNX and its int8
# quantization (the CPU default of `make demo DETECTOR=yolo`).
DETECTOR_DATA_ARGS ?=
# Two torch threads on an otherwise idle 2-core machine (a 0.37 s step, 3.2 min an epoch); with other jobs
# running, 2 threads spin at barriers (2-4x slower): DETECTOR_THREADS=1 then.
DETECTOR_THREADS ?= 2
train-detector: setup
	$(ENV) && python -m object_permanence.tools.make_detector_data --out out/detector/data $(DETECTOR_DATA_ARGS)
	$(ENV) && python -m object_permanence.tools.train_detector --model models/detector/sim_yolo.yaml --epochs 30 \
		--patience 6 --time-hours 0.5 --threads $(DETECTOR_THREADS) --no-ship
	$(ENV) && python -m object_permanence.tools.train_detector --model out/detector/runs/sim_yolo/weights/best.pt \
		--epochs 2 --close-mosaic 2 --warmup-epochs 0 --optimizer SGD --lr0 0.002 --patience 3 --time-hours 0.2 \
		--threads $(DETECTOR_THREADS) --name sim_yolo_ft
	$(MAKE) export-detector

export-detector: setup
	$(ENV) && python -m object_permanence.tools.export_detector --weights models/detector/sim_yolo.pt \
		--out models/detector/sim_yolo.onnx --imgsz 320 --fp16-weights --report out/eval/detector_export.json
	$(ENV) && python -m object_permanence.tools.quantize_detector --onnx models/detector/sim_yolo.onnx \
		--out models/detector/sim_yolo_int8.onnx --report out/eval/detector_quantize.json

# The re-ID embedding network (seeds 0-899, validation 900-999) -> models/reid/.
train-reid: setup
	$(ENV) && python -m object_permanence.tools.train_reid
	$(MAKE) export-reid

# The re-ID checkpoint's ONNX export (embedding: learned on the CPU, no torch), checked against it.
export-reid: setup
	$(ENV) && python -m object_permanence.tools.export_reid --weights models/reid/reid_net.pt \
		--out models/reid/reid_net.onnx --report out/eval/reid_export.json

# The learned persistence filter: the shipped weights' data (train seeds 0-17 and 30-41, validation 24-29,
# held-out 1000-1003); training is deterministic and writes models/persistence/ (weights, model
# card, curves; and the gradient-boosting model on the same data, persistence_boosting.joblib). PERSISTENCE_DATA_ARGS= (empty) uses the tools' larger default seed ranges.
# --workers N runs N simulations at a time (same data with any N).
PERSISTENCE_DATA_ARGS ?= --train-seeds 0-17,30-41 --val-seeds 24-29 --splits train,val --workers 2
train-persistence: setup
	$(ENV) && python -m object_permanence.tools.make_persistence_data --out out/persistence/data $(PERSISTENCE_DATA_ARGS)
	$(ENV) && python -m object_permanence.tools.train_persistence --patience 5 --running-mean
	$(MAKE) export-persistence
	$(ENV) && python -m object_permanence.tools.train_persistence_boosting

# The transformer checkpoint's ONNX export (the node's CPU path, no torch needed), checked against it.
export-persistence: setup
	$(ENV) && python -m object_permanence.tools.export_persistence --weights models/persistence/persistence_transformer.pt \
		--out models/persistence/persistence_transformer.onnx --report out/eval/persistence_export.json

# Transformer vs min-hits vs existence probability vs gradient boosting on held-out seeds and a
# held-out nuisance setting -> out/eval/persistence.json / .md
eval-persistence: setup
	$(ENV) && python -m object_permanence.tools.eval_persistence --workers 2

# Timings (not tests): the world model against trackers' peers, the composed pipeline at 30 Hz.
bench: setup
	$(ENV) && python -m object_permanence.tools.bench_world_model --out out/bench
	$(ENV) && python -m object_permanence.tools.bench_pipeline --out out/bench
	$(ENV) && python -m object_permanence.tools.bench_persistence
	$(ENV) && python -m object_permanence.tools.bench_triangulator --out out/bench
	$(ENV) && python -m object_permanence.tools.bench_detector --out out/bench

# Inside make test the ROS tests must run: a missing rclpy is an error, not a skip.
test: setup
	$(ENV) && OBJECT_PERMANENCE_REQUIRE_ROS=1 python -m pytest test $(PYTEST_ARGS)

# The ROS-free core alone (no build needed beyond the venv).
test-core: setup
	$(ENV) && python -m pytest test/core $(PYTEST_ARGS)

clean:
	rm -rf build install log out build.log .venv
