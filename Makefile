# chexradi — developer entry points.
#   make test   set up .venv (if missing) under constraints.txt and run the test suite
#   make test-fast  the suite without the tests marked slow (the inner loop: about 2.5 minutes)
#   make docs   the documentation site (Sphinx) into docs/_build/html; fails on any warning
#   make dist   the wheel and sdist into dist/ (python -m build)
#   make demo   set up .venv, run `chexradi extract` on real radiographs, then the loop on the phantom
#   make bench  run the extraction benchmark (chexradi vs PyRadiomics)
#   make bench-loop  one round of the loop on the phantom, time per stage, radiomics' share (both engines)
#   make bench-scaling  extraction time and memory as ROI size and bin count grow (both engines)
#   make bench-memory  the batch driver's memory as the number of cases grows (values held vs read back)
#   make bench-reports  report labeler vs the IU X-ray human MeSH labels (P/R/F1, reports/s)
#   make bench-shape    3-D shape: chexradi vs PyRadiomics on brain1, breast1 and CT-like lungs (ratios, parity)
#   make bench-filters  filtered image types (LoG, wavelet) end to end, chexradi vs PyRadiomics (ratios, parity)
#   make bench-voxel    voxel-based feature maps (kernelRadius 1, 2), chexradi vs PyRadiomics (ratios, parity)
#   make parity regenerate docs/parity.md from a same-process comparison
#   make ablation  the loop's arms (control, cam, truth, random, lungs) x 3 seeds on the phantom, compared with
#                  control, tables into docs/loop-results.md (about an hour on 2 CPU cores)
#   make text-guidance  the text teachers' arms (tandem, vkd, cam+tandem, the text-drop sweep) x 3 seeds vs
#                  control, tables into docs/text-guidance.md (reuses `make ablation`'s control and cam runs)
#   make text-branch  the teachers' report branches on the IU X-ray reports (SHARED=../shared/data by default)
#   make report-table  report generation: the text floors on IU X-ray's R2Gen test split (SHARED) and the phantom
#                  arms (encoder from `make ablation`'s control / cam classifiers x label conditioning x 3 seeds,
#                  greedy and beam 3), tables into docs/report-generation.md (about 1.5 hours on 2 CPU cores)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.chexradi-installed
PIP    := $(BIN)/python -m pip

.PHONY: test test-fast docs dist demo bench bench-loop bench-scaling bench-memory bench-reports bench-shape bench-filters bench-voxel parity ablation ablation-large heatmap-study text-guidance text-branch report-table venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=24"
	$(PIP) install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

docs: $(STAMP)
	$(BIN)/python -m sphinx -E -W -n --keep-going -b html docs docs/_build/html
	@echo "open docs/_build/html/site.html"

# A small environment of its own: building needs `build` and setuptools, not the test environment.
BUILD_VENV := .venv-build
dist:
	test -x $(BUILD_VENV)/bin/python || $(PYTHON) -m venv $(BUILD_VENV)
	$(BUILD_VENV)/bin/python -m pip install --quiet -c constraints.txt build setuptools
	rm -rf dist
	$(BUILD_VENV)/bin/python -m build --no-isolation --outdir dist .

demo: $(STAMP)
	$(BIN)/python examples/demo_extract.py --out demo-output
	$(BIN)/chexradi iterate --data phantom --model resnet18_ta --rounds 2 --out demo-output/loop

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_extract.py

bench-loop: $(STAMP)
	$(BIN)/python benchmarks/bench_loop.py

bench-scaling: $(STAMP)
	$(BIN)/python benchmarks/bench_scaling.py

bench-memory: $(STAMP)
	$(BIN)/python benchmarks/bench_batch_memory.py

bench-reports: $(STAMP)
	$(BIN)/python benchmarks/bench_reports.py

bench-shape: $(STAMP)
	$(BIN)/python benchmarks/bench_shape.py

bench-filters: $(STAMP)
	$(BIN)/python benchmarks/bench_filters.py

bench-voxel: $(STAMP)
	$(BIN)/python benchmarks/bench_voxel.py

parity: $(STAMP)
	$(BIN)/python benchmarks/parity_report.py --out docs/parity.md

ablation: $(STAMP)
	$(BIN)/python examples/ablation.py --out runs/ablation --docs docs/loop-results.md --section demo

ablation-large: $(STAMP)
	$(BIN)/python examples/ablation.py --out runs/large --data "phantom:n_train=720,n_val=240,n_test=360" \
		--arms control cam truth --docs docs/loop-results.md --section large

text-guidance: $(STAMP)
	$(BIN)/python examples/text_guidance.py --out runs/text $$(test -d runs/ablation/control && echo --reuse runs/ablation) \
		--docs docs/text-guidance.md

SHARED ?= ../shared/data
text-branch: $(STAMP)
	$(BIN)/python examples/text_branch_iu.py $(SHARED)/iu-xray-reports --out runs/text_branch --docs docs/text-guidance.md

report-table: $(STAMP)
	$(BIN)/python examples/reproduce_report_table.py --iu-reports $(SHARED)/iu-xray-reports/r2gen_annotation.json \
		--no-models --docs docs/report-generation.md
	$(BIN)/python examples/reproduce_report_table.py --data phantom --loop-runs runs/ablation --out runs/reportgen \
		--docs docs/report-generation.md

heatmap-study: $(STAMP)
	$(BIN)/python examples/heatmap_study.py --out runs/heatmaps --json runs/heatmaps/study.json

clean:
	rm -rf $(VENV) $(BUILD_VENV) build dist *.egg-info demo-output .pytest_cache runs docs/_build docs/api
