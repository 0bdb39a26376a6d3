# codesign: every target that runs codesign creates the virtual environment first when it is missing.
# `make help` lists the targets and variables.
SHELL    := /bin/bash
PYTHON   ?= python3.11
VENV     := .venv
BIN      := $(VENV)/bin
STAMP    := $(VENV)/.installed-stamp
CODESIGN := $(BIN)/codesign
BUILD    ?= build
MODEL    ?= diracdeltanet
CONFIG   ?= a
BOARD    ?= ultra96v2
HW       ?=
PYTEST_ARGS ?=
# pytest-xdist workers: one per core, at most 4 (each imports torch); TEST_JOBS=0 runs in one process
TEST_JOBS ?= auto

.DEFAULT_GOAL := help
.PHONY: help venv demo demo-quick demo-codenet compile csim bitstream deploy report test test-all bench clean

# $(call step,NAME) COMMAND: COMMAND, then its wall time on stderr, "== NAME: 12.3 s wall" (bash's `time`)
step = TIMEFORMAT='== $(1): %1R s wall'; time

help:
	@echo 'make demo             DiracDeltaNet W4A4 on digits: train (quick preset), export, golden, compare, project, C-sim'
	@echo 'make demo-quick       the same with the quick digits preset (20 + 8 epochs instead of 30 + 20)'
	@echo 'make demo-codenet     CoDeNet W4A8 (config a) on a synthetic VOC set: train, export, golden AP50, C-sim'
	@echo 'make compile          MODEL → integer IR → HLS/Vivado project in $$(BUILD)/<model>-<board>'
	@echo 'make csim             compile, then C-simulate the project bit for bit against the golden model'
	@echo 'make bitstream        compile, then run Vitis HLS and Vivado (.bit + .hwh)'
	@echo 'make deploy           compile, then a folder for the board in $$(BUILD)/deploy-…, benchmarked on the simulated device'
	@echo 'make report           per-layer cycle/resource estimate of MODEL on the board (table, plots, JSON)'
	@echo 'make test / test-all  the fast test suite / with the slow tests'
	@echo 'make bench            golden-model and C-sim benchmarks'
	@echo 'make venv / clean     create $$(VENV) / remove $$(BUILD)'
	@echo
	@echo 'MODEL=diracdeltanet   a built-in model (diracdeltanet, codenet; trained once on its default data set),'
	@echo '                      or your own file: a QAT checkpoint (.pt, exported), a QONNX file (.onnx, imported) or an integer IR (.ir, used as is)'
	@echo 'CONFIG=a              CoDeNet configuration a..e (MODEL=codenet only)'
	@echo 'BOARD=ultra96v2       board (boards/*.yaml: $(subst $(eval) ,$(comma) ,$(BOARDS)))'
	@echo 'HW=hw.yaml            hardware config YAML passed as --hw to compile and report (default: sized for the board)'
	@echo 'BUILD=build           output directory'
	@echo 'TEST_JOBS=auto        make test workers (pytest-xdist: one per core, at most 4; 0: one process)'

comma := ,
BOARDS := $(sort $(basename $(notdir $(wildcard boards/*.yaml))))

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (codesign needs Python 3.11)"; exit 1; }
	$(call step,install) { { test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); } && \
	  $(BIN)/pip install --quiet --upgrade pip && $(BIN)/pip install --quiet -e '.[dev]'; }
	touch $@

venv: $(STAMP)

# ---- MODEL: a built-in name or the user's own file; checked before any work -----------------
BUILTIN := diracdeltanet codenet
CODENET_CONFIGS := a b c d e
MODEL_GOALS := compile csim bitstream deploy report
ACCEPTED := built-in models: diracdeltanet, codenet (CONFIG=a..e); files: a QAT checkpoint .pt, a QONNX file .onnx or an IR .ir

MODEL_KIND := $(if $(filter 1,$(words $(MODEL))),$(strip \
  $(if $(filter $(BUILTIN),$(MODEL)),builtin,\
  $(if $(filter %.pt,$(MODEL)),pt,\
  $(if $(filter %.ir,$(MODEL)),ir,\
  $(if $(filter %.onnx,$(MODEL)),onnx))))))
FILE_MODEL := $(filter pt ir onnx,$(MODEL_KIND))
IS_FILE = $(shell test -f '$(1)' && echo yes)

ifneq ($(filter $(MODEL_GOALS),$(MAKECMDGOALS)),)
  ifeq ($(MODEL_KIND),)
    ifneq ($(call IS_FILE,$(MODEL)),)
      $(error MODEL=$(MODEL) has the wrong extension: a model file is a QAT checkpoint (.pt), a QONNX file (.onnx) or an IR (.ir); built-in models: diracdeltanet, codenet)
    else
      $(error MODEL=$(MODEL) is neither a built-in model (diracdeltanet, codenet) nor a .pt/.onnx/.ir file)
    endif
  else ifneq ($(FILE_MODEL),)
    ifeq ($(call IS_FILE,$(MODEL)),)
      $(error MODEL=$(MODEL): no such file ($(ACCEPTED)))
    endif
  endif
  ifeq ($(MODEL),codenet)
    ifeq ($(filter $(CODENET_CONFIGS),$(CONFIG)),)
      $(error CONFIG=$(CONFIG) is not a CoDeNet configuration (a, b, c, d, e))
    endif
  else ifeq ($(origin CONFIG),command line)
    $(error CONFIG=$(CONFIG) applies only to MODEL=codenet, not MODEL=$(MODEL))
  endif
  ifeq ($(filter $(BOARDS),$(BOARD)),)
    $(error BOARD=$(BOARD) is not a board (boards/*.yaml: $(subst $(eval) ,$(comma) ,$(BOARDS))))
  endif
  ifneq ($(HW),)
    ifeq ($(call IS_FILE,$(HW)),)
      $(error HW=$(HW): no such hardware config YAML)
    endif
  endif
endif

# ---- the built-in models: trained once on their default data sets (shared with the demos) ----
# DiracDeltaNet: the digits preset (make demo, MODEL=diracdeltanet); the quick one for make demo-quick
DEMO := $(BUILD)/demo-diracdeltanet
DEMO_QUICK := $(BUILD)/demo-diracdeltanet-quick
CODENET := $(BUILD)/demo-codenet
# config a lives where `make demo-codenet` puts it; the others beside it
codenet_dir = $(CODENET)$(if $(filter-out a,$(1)),-$(1))

# A user's file is never remade: with MODEL=<file> (and no demo goal) there are no training rules
# that could match its path.
ifneq ($(if $(FILE_MODEL),$(filter demo demo-quick demo-codenet,$(MAKECMDGOALS)),yes),)
$(DEMO)/model.pt: | $(STAMP)
	$(call step,train) $(CODESIGN) train --model diracdeltanet --dataset digits --preset digits -o $@

$(DEMO_QUICK)/model.pt: | $(STAMP)
	$(call step,train) $(CODESIGN) train --model diracdeltanet --dataset digits --preset digits-quick -o $@

$(DEMO)/model.ir $(DEMO_QUICK)/model.ir: %/model.ir: %/model.pt | $(STAMP)
	$(call step,export) $(CODESIGN) export $< -o $@ --qonnx $*/model.qonnx.onnx

$(CODENET)/shapes/classes.txt: | $(STAMP)
	$(call step,data) $(BIN)/python -m codesign.data.synthetic_voc $(CODENET)/shapes --images 2000 --size 128

define CODENET_RULES
$(call codenet_dir,$(1))/model.pt: | $(CODENET)/shapes/classes.txt $(STAMP)
	$$(call step,train) $$(CODESIGN) train --model codenet --config $(1) --dataset $(CODENET)/shapes -o $$@

$(call codenet_dir,$(1))/model.ir: $(call codenet_dir,$(1))/model.pt | $(STAMP)
	$$(call step,export) $$(CODESIGN) export $$< -o $$@
endef
$(foreach c,$(CODENET_CONFIGS),$(eval $(call CODENET_RULES,$(c))))
endif

# ---- hardware: MODEL → IR → HLS project → C-sim / vendor tools / deploy / report -------------
ifeq ($(MODEL),codenet)
  NAME := codenet$(if $(filter-out a,$(CONFIG)),-$(CONFIG))
  IR   := $(call codenet_dir,$(CONFIG))/model.ir
else ifeq ($(MODEL_KIND),builtin)
  NAME := $(MODEL)
  IR   := $(BUILD)/demo-$(MODEL)/model.ir
else
  NAME := $(basename $(notdir $(MODEL)))
  IR   := $(if $(filter pt onnx,$(MODEL_KIND)),$(BUILD)/$(NAME)/model.ir,$(MODEL))
endif

ifeq ($(MODEL_KIND),pt)
$(IR): $(MODEL) | $(STAMP)
	$(CODESIGN) export $< -o $@
endif
ifeq ($(MODEL_KIND),onnx)
$(IR): $(MODEL) | $(STAMP)
	$(CODESIGN) import $< -o $@
endif

# --board only when BOARD is given or there is no HW file (the HW file names its own board)
BOARD_GIVEN := $(filter command line environment override,$(origin BOARD))
HW_ARGS := $(if $(HW),$(if $(BOARD_GIVEN),--board $(BOARD) )--hw $(HW),--board $(BOARD))
TARGET  := $(if $(HW),$(if $(BOARD_GIVEN),$(BOARD)-)$(basename $(notdir $(HW))),$(BOARD))
PROJECT := $(BUILD)/$(NAME)-$(TARGET)

compile: $(IR) | $(STAMP)
	$(CODESIGN) compile --model $(IR) $(HW_ARGS) -o $(PROJECT)

csim: compile
	$(CODESIGN) csim --project $(PROJECT)

bitstream: compile
	$(CODESIGN) bitstream --project $(PROJECT)

# A self-contained folder for the board (runtime, weights, schedule, notebook); overlay files are
# included when `make bitstream` has produced them.
deploy: compile
	$(CODESIGN) deploy --project $(PROJECT) -o $(BUILD)/deploy-$(NAME)-$(TARGET)
	$(CODESIGN) benchmark --package $(BUILD)/deploy-$(NAME)-$(TARGET) --device sim --frames 8

report: $(IR) | $(STAMP)
	$(CODESIGN) report --model $(IR) $(HW_ARGS) -o $(BUILD)/report-$(NAME)-$(TARGET)

# ---- demo: DiracDeltaNet W4A4 on scikit-learn's digits -------------------------------------
# $(call dirac_demo,DIR,PROJECT): the steps after training, on DIR/model.ir
define dirac_demo
	$(call step,summary) $(CODESIGN) summary --ir $(1)/model.ir
	$(call step,golden) $(CODESIGN) golden --ir $(1)/model.ir --dataset digits
	$(call step,compare) $(CODESIGN) compare --checkpoint $(1)/model.pt --ir $(1)/model.ir --dataset digits --json $(1)/agreement.json
	$(call step,compile) $(CODESIGN) compile --model $(1)/model.ir --board $(BOARD) -o $(2)
	$(call step,csim) $(CODESIGN) csim --project $(2) --cycles
endef

demo: $(DEMO)/model.ir | $(STAMP)
	$(call dirac_demo,$(DEMO),$(BUILD)/diracdeltanet-$(BOARD))

demo-quick: $(DEMO_QUICK)/model.ir | $(STAMP)
	$(call dirac_demo,$(DEMO_QUICK),$(BUILD)/diracdeltanet-quick-$(BOARD))

# ---- demo-codenet: CoDeNet W4A8 (config a, width 0.5, 128²) on a synthetic Pascal VOC set -----
demo-codenet: $(CODENET)/model.ir | $(STAMP)
	$(call step,summary) $(CODESIGN) summary --ir $<
	$(call step,golden) $(CODESIGN) golden --ir $< --dataset $(CODENET)/shapes --split test --draw $(CODENET)/detections
	$(call step,compare) $(CODESIGN) compare --checkpoint $(CODENET)/model.pt --ir $< --dataset $(CODENET)/shapes --json $(CODENET)/agreement.json
	$(call step,compile) $(CODESIGN) compile --model $< --board $(BOARD) -o $(BUILD)/codenet-$(BOARD)
	$(call step,csim) $(CODESIGN) csim --project $(BUILD)/codenet-$(BOARD)

# ---- tests and benchmarks --------------------------------------------------------------------
# a module's tests stay on one worker (--dist loadscope), so its module fixtures are built once
XDIST = $(if $(filter 0,$(TEST_JOBS)),,-n $(TEST_JOBS) --maxprocesses 4 --dist loadscope)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(XDIST) $(PYTEST_ARGS)

# one process: the slow tests train with every core, and side by side they starve each other
test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m '' $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/golden_vs_torch.py
	$(BIN)/python bench/csim.py

clean:
	rm -rf $(BUILD)
