#!/usr/bin/env bash
# The GPU checks, in one command, on a machine with a CUDA GPU:
#
#   bash benchmarks/gpu_check.sh OUT_DIR
#
# 1. the environment: nvidia-smi, torch and CUDA versions, the GPU torch sees;
# 2. the tests that need CUDA (AMP training in float16, CAM memory on the GPU), plus the training,
#    CAM and distributed test files on this machine;
# 3. benchmarks/bench_loop.py on cuda with resnet18_ta (triplet attention) and resnet18 (without):
#    training images/s, each stage's share of the round, AMP; with the PyRadiomics comparison only
#    where PyRadiomics is installed; radiomics on every CPU (--jobs 0, the loop's default);
# 4. torchrun with the nccl backend on every GPU of the machine: two rounds of the loop on the phantom;
# 5. report generation on cuda with AMP (float16): `chexradi reportgen train` (fine-tuned densenet121 with label
#    conditioning, two epochs on a small phantom) and `chexradi reportgen evaluate` (greedy and beam 3).
#
# Each step writes OUT_DIR/<step>.log (bench_loop also OUT_DIR/bench_loop_<model>.json); a failing step
# does not stop the others, and the script exits non-zero if any failed. ONLY="env bench_loop_resnet18"
# runs just the steps named (to fit a time limit per command). chexradi must be importable
# by $PYTHON (default python3): `pip install -e .`, or PYTHONPATH=<this checkout> with its dependencies
# (SimpleITK among them) installed.
set -u
OUT=${1:?usage: bash benchmarks/gpu_check.sh OUT_DIR}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
failed=()

step() {  # step NAME COMMAND...: run, log, note failure
    local name=$1
    shift
    if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then
        return 0
    fi
    echo "== $name: $*" | tee "$OUT/$name.log"
    local t0=$SECONDS
    "$@" >>"$OUT/$name.log" 2>&1
    local rc=$?
    echo "== $name: exit $rc after $((SECONDS - t0)) s" | tee -a "$OUT/$name.log"
    tail -n 25 "$OUT/$name.log" | grep -v '^== ' || true
    [ $rc -eq 0 ] || failed+=("$name")
}

step env bash -c "nvidia-smi; $PY -c 'import torch, torchvision, numpy, numba, chexradi; \
print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, \"torchvision\", torchvision.__version__, \
\"numpy\", numpy.__version__, \"numba\", numba.__version__, \"chexradi\", chexradi.__version__); \
assert torch.cuda.is_available(), \"torch sees no CUDA device\"; \
print(torch.cuda.device_count(), \"GPU(s):\", [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])'"

step tests_cuda "$PY" -m pytest -q -p no:cacheprovider -rs tests/test_train.py tests/test_cam_methods.py \
    tests/test_distributed.py

if "$PY" -c "import radiomics" 2>/dev/null; then ref=(); else ref=(--no-pyradiomics); fi
for model in resnet18_ta resnet18; do
    step "bench_loop_$model" "$PY" benchmarks/bench_loop.py --device cuda --jobs 0 --model "$model" "${ref[@]}" \
        --json "$OUT/bench_loop_$model.json"
done

ngpu=$("$PY" -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 1)
step torchrun_nccl "$PY" -m torch.distributed.run --standalone --nproc_per_node "$ngpu" -m chexradi iterate \
    --data phantom:n=300,size=96 --rounds 2 --epochs 3 --device cuda --out "$OUT/torchrun_run"

step reportgen_cuda bash -c "$PY -m chexradi reportgen train --data phantom:n_train=96,n_val=32,n_test=32 \
    --out '$OUT/reportgen_run' --encoder densenet121 --labels --epochs 2 --device cuda --amp -q && \
    $PY -m chexradi reportgen evaluate '$OUT/reportgen_run' --beam 1 --beam 3 --device cuda -q"

if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED: ${failed[*]} (see $OUT/<step>.log)"
    exit 1
fi
echo "all GPU checks passed; figures in $OUT/bench_loop_*.json"
