#!/bin/sh
# The measurements to take when a session is lent an NVIDIA H100 or H200, as one prepared run (issue 10: run
# opgraph bench on the GPU, commit the CSV under benchmarks/data/, report the validation error):
#
#     run(command="sh benchmarks/device_check.sh kernels", timeout_s=540)     # the device tool; 71 s on an H200
#     run(command="sh benchmarks/device_check.sh steps", timeout_s=540)       # whole decode steps (measure_steps.py); 27 s
#     run(command="sh benchmarks/device_check.sh vectors", timeout_s=540)     # norms, rope, SiLU x mul, embeddings; 110 s
#     run(command="sh benchmarks/device_check.sh wide", timeout_s=540)        # more models, layouts and steps; 263 s
#
# (no argument: all four, one after the other, about 8 minutes on an H200 (December 2026), plus a minute or two for
# the machine to start; split them when the device time left is short. `all` writes ten files and the device tool
# brings back eight: with `all`, pack $OUT into one archive at the end of the command.)
# It needs python3 with torch, networkx, attrs, tabulate and numpy (the device image has them) and installs
# nothing: opgraph runs from a copy of the checkout laid out as the installed package is (models/ and hardware/
# inside it). It writes under $OUT (./device-out without one):
#   bench.csv     opgraph bench's kernels of llama-3-8b (GEMMs, attention, norms, SwiGLU, embeddings), prefill and
#                 decode at batches 1-128 and lengths 1,024 and 4,096, each in a CUDA graph
#   bench.txt     what bench printed
#   validate.txt  the shipped calibration of that GPU against them, by class and regime
#   steps.csv     whole llama-3-8b decode steps at batch 8, 32, 128 and context 1,024, 4,096, each replayed in a CUDA
#   steps.txt     graph, beside opgraph's expected step under the flash plan (benchmarks/measure_steps.py)
#   vectors.csv   norms, add + RMSNorm, SiLU x mul, rope and embeddings at 1-16,384 tokens and today's widths, each in
#   vectors.txt   a CUDA graph (benchmarks/measure_vector_kernels.py)
#   wide.csv      opgraph bench's kernels of qwen3-32b, llama-3-70b at --tp 8 (thin GEMMs) and qwen3-8b at --tp 2,
#                 prefill and decode at batches 1-256 and lengths 512 and 2,048
#   steps-wide.csv  decode steps of mistral-small-3.1-24b (batch 8-128, context 1,024-4,096) and of llama-3-8b at
#                 batch 1 and 256 and context 512 and 8,192 (all in wide.txt)
# benchmarks/data/h200-opgraph.csv.gz and h200-steps.csv are these files from the H200 lent in December 2026.
# DRY=1 lists the kernels instead of measuring them (no GPU needed): how CI-less machines check this script.
set -eu
part=${1:-all}
case "$part" in
    kernels|steps|vectors|wide|all) ;;
    *) echo "device_check: unknown part '$part'; valid: kernels, steps, vectors, wide, all" >&2; exit 2 ;;
esac
mkdir -p "${OUT:-device-out}"
out=$(cd "${OUT:-device-out}" && pwd)
root=$(cd -P "$(dirname "$0")/.." && pwd)  # the checkout this script is in (links resolved), run from anywhere
pkg=$(mktemp -d)
cp -r "$root/opgraph" "$pkg/opgraph"
rm -rf "$pkg/opgraph/models" "$pkg/opgraph/hardware"
cp -r "$root/models" "$pkg/opgraph/models"
cp -r "$root/hardware" "$pkg/opgraph/hardware"
cd "$pkg"  # python3 -m puts the working folder first on its path: the copy, not the checkout's opgraph/
export PYTHONPATH="$pkg" PYTHONUNBUFFERED=1
sizes="--batch 1,8,32,128 --lengths 1024,4096"
if [ "${DRY:-0}" = 1 ]; then
    python3 -m opgraph bench llama-3-8b $sizes --dry-run | tee "$out/bench.txt"
    python3 "$root/benchmarks/measure_vector_kernels.py" --dry-run | tee "$out/vectors.txt"
    exit 0
fi
gpu=$(python3 -c 'import torch; n = torch.cuda.get_device_name()
print("h200" if "H200" in n else "h100-sxm" if "H100" in n else "")')
if [ -z "$gpu" ]; then
    echo "device_check: this GPU is not an H100 or H200; nothing measured" >&2
    exit 2
fi
if [ "$part" = kernels ] || [ "$part" = all ]; then
    python3 -m opgraph bench llama-3-8b $sizes --out "$out/bench.csv" 2>&1 | tee "$out/bench.txt"
    python3 -m opgraph validate "$out/bench.csv" --hardware "$gpu" 2>&1 | tee "$out/validate.txt"
fi
if [ "$part" = steps ] || [ "$part" = all ]; then
    python3 "$root/benchmarks/measure_steps.py" --model llama-3-8b --batch 8,32,128 --context 1024,4096 \
        --out "$out/steps.csv" 2>&1 | tee "$out/steps.txt"
fi
if [ "$part" = vectors ] || [ "$part" = all ]; then
    python3 "$root/benchmarks/measure_vector_kernels.py" --out "$out/vectors.csv" 2>&1 | tee "$out/vectors.txt"
fi
if [ "$part" = wide ] || [ "$part" = all ]; then
    wide="--batch 1,8,64,256 --lengths 512,2048"
    : >"$out/wide.txt"
    for m in "qwen3-32b" "llama-3-70b --tp 8" "qwen3-8b --tp 2"; do
        name=$(echo "$m" | tr -d ' -')
        python3 -m opgraph bench $m $wide --out "$out/wide-$name.csv" 2>&1 | tail -3 >>"$out/wide.txt"
    done
    python3 -c 'import csv, glob, sys
files = sorted(glob.glob(sys.argv[1] + "/wide-*.csv"))
rows = [r for f in files for r in csv.DictReader(open(f))]
w = csv.DictWriter(open(sys.argv[1] + "/wide.csv", "w", newline=""), fieldnames=list(rows[0]))
w.writeheader(); w.writerows(rows)' "$out"
    rm -f "$out"/wide-*.csv
    python3 -m opgraph validate "$out/wide.csv" --hardware "$gpu" >>"$out/wide.txt" 2>&1
    for s in "mistral-small-3.1-24b --batch 8,32,128 --context 1024,4096" "llama-3-8b --batch 1,256 --context 512,8192"; do
        python3 "$root/benchmarks/measure_steps.py" --model $s --out "$out/steps-part.csv" >>"$out/wide.txt" 2>&1
        if [ -s "$out/steps-wide.csv" ]; then tail -n +2 "$out/steps-part.csv"; else cat "$out/steps-part.csv"; fi \
            >>"$out/steps-wide.csv"
    done
    rm -f "$out/steps-part.csv"
fi
