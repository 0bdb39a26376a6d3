# codesign: every target creates the virtual environment first when it is missing.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
BUILD  ?= build
MODEL  ?= diracdeltanet
BOARD  ?= ultra96v2
PYTEST_ARGS ?=

.PHONY: venv demo demo-codenet compile csim bitstream deploy test test-all bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (codesign needs Python 3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

venv: $(STAMP)

# ---- demo: DiracDeltaNet W4A4 on scikit-learn's digits -------------------------------------
DEMO := $(BUILD)/demo-$(MODEL)

$(DEMO)/model.pt: $(STAMP)
	$(BIN)/codesign train --model $(MODEL) --dataset digits --preset digits -o $@

$(DEMO)/model.ir: $(DEMO)/model.pt
	$(BIN)/codesign export $< -o $@ --qonnx $(DEMO)/model.qonnx.onnx

# ---- hardware: the trained default model → HLS project → C-sim / vendor tools -------------
PROJECT := $(BUILD)/$(MODEL)-$(BOARD)

compile: $(DEMO)/model.ir
	$(BIN)/codesign compile --model $< --board $(BOARD) -o $(PROJECT)

csim: compile
	$(BIN)/codesign csim --project $(PROJECT)

bitstream: compile
	$(BIN)/codesign bitstream --project $(PROJECT)

# A self-contained folder for the board (runtime, weights, schedule, notebook); overlay files are
# included when `make bitstream` has produced them.
deploy: compile
	$(BIN)/codesign deploy --project $(PROJECT) -o $(BUILD)/deploy-$(MODEL)-$(BOARD)
	$(BIN)/codesign benchmark --package $(BUILD)/deploy-$(MODEL)-$(BOARD) --device sim --frames 8

demo: $(DEMO)/model.ir
	$(BIN)/codesign summary --ir $<
	$(BIN)/codesign golden --ir $< --dataset digits
	$(BIN)/codesign compare --checkpoint $(DEMO)/model.pt --ir $< --dataset digits --json $(DEMO)/agreement.json
	$(BIN)/codesign compile --model $< --board $(BOARD) -o $(PROJECT)
	$(BIN)/codesign csim --project $(PROJECT) --cycles

# ---- demo-codenet: CoDeNet W4A8 (config a, width 0.5, 128²) on a synthetic Pascal VOC set -----
CODENET := $(BUILD)/demo-codenet

$(CODENET)/shapes/classes.txt: $(STAMP)
	$(BIN)/python -m codesign.data.synthetic_voc $(CODENET)/shapes --images 2000 --size 128

$(CODENET)/model.pt: $(CODENET)/shapes/classes.txt
	$(BIN)/codesign train --model codenet --config a --dataset $(CODENET)/shapes -o $@

$(CODENET)/model.ir: $(CODENET)/model.pt
	$(BIN)/codesign export $< -o $@

demo-codenet: $(CODENET)/model.ir
	$(BIN)/codesign summary --ir $<
	$(BIN)/codesign golden --ir $< --dataset $(CODENET)/shapes --split test --draw $(CODENET)/detections
	$(BIN)/codesign compare --checkpoint $(CODENET)/model.pt --ir $< --dataset $(CODENET)/shapes --json $(CODENET)/agreement.json
	$(BIN)/codesign compile --model $< --board $(BOARD) -o $(BUILD)/codenet-$(BOARD)
	$(BIN)/codesign csim --project $(BUILD)/codenet-$(BOARD)

# ---- tests and benchmarks --------------------------------------------------------------------
test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m '' $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/golden_vs_torch.py
	$(BIN)/python bench/csim.py

clean:
	rm -rf $(BUILD)
