#!/usr/bin/env bash
# GPU check of gauguin on a CUDA machine whose python3 already holds PyTorch (no set-up, no network):
# every family trains a short real run on the GPU (bf16 autocast) and translates/samples from it,
# resume is compared with an uninterrupted run, the main job runs in full, then the DCGAN and SPADE
# benches run with --device $DEVICE. Fashion-MNIST IDX files are read from $GAUGUIN_FASHION_MNIST.
#
#   GAUGUIN_FASHION_MNIST=/path/to/idx bash scripts/device_check.sh [out_dir]
#   DEVICE=cpu PYTHON=.venv/bin/python bash scripts/device_check.sh     # the same steps on the CPU (benches in --quick), to try it here
set -u
DEVICE=${DEVICE:-cuda}
STEPS=${STEPS:-200}  # steps of each family's short run
QUICK=$([ "$DEVICE" = cpu ] && echo --quick)
OUT_DIR=${1:-/tmp/gauguin-device-check}
RUNS=$(mktemp -d)
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
mkdir -p "$OUT_DIR"
PY=${PYTHON:-python3}
GAUGUIN=("$PY" -m gauguin.cli)
status=0
step() {  # step NAME SECONDS COMMAND...: runs it with a time limit, prints its wall time, remembers failures
    local name=$1 limit=$2; shift 2
    echo "=== $name"
    local start=$SECONDS
    timeout "$limit" "$@" || { echo "!!! $name failed (exit $?)"; status=1; }
    echo "--- $name: $((SECONDS - start)) s"
}

nvidia-smi -L 2>/dev/null
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available() and torch.cuda.get_device_name())"

common=(device=$DEVICE progress=false log_every=100 checkpoint_every=100 eval_every=100 sample_every=100)
step "main job (configs/dcgan_fashion.yaml) on $DEVICE" 240 \
    "${GAUGUIN[@]}" train dcgan --config configs/dcgan_fashion.yaml out_dir="$RUNS/dcgan" device=$DEVICE progress=false
cp "$RUNS"/dcgan/metrics.jsonl "$OUT_DIR"/dcgan_metrics.jsonl 2>/dev/null
step "dcgan sample on $DEVICE" 60 "${GAUGUIN[@]}" sample "$RUNS/dcgan" --device $DEVICE --out "$OUT_DIR/dcgan_samples.png"

for family in spade pix2pixhd pix2pix cyclegan; do
    preset=configs/${family}_fashion.yaml
    step "$family: $STEPS steps on $DEVICE" 180 "${GAUGUIN[@]}" train "$family" $([ -f "$preset" ] && echo --config "$preset") \
        steps=$STEPS batch_size=8 out_dir="$RUNS/$family" "${common[@]}"
done

"$PY" - "$RUNS" <<'EOF'
import sys
from pathlib import Path
import numpy as np
from PIL import Image
from gauguin.data.silhouettes import FashionMNISTSilhouettes
from gauguin.data.paired import FashionMNISTEdges
# inputs for translate: one held-out silhouette label map and one edge drawing
runs = Path(sys.argv[1])
labels = FashionMNISTSilhouettes("test", crop_size=32).get_batch([0])["label_map"][0]
Image.fromarray(labels.numpy().astype(np.uint8)).save(runs / "labels.png")
pair = FashionMNISTEdges("test", crop_size=32)[0]
for name, image in (("edges", pair["input"]), ("garment", pair["image"])):
    Image.fromarray(((image[0].numpy() + 1) * 127.5).round().astype(np.uint8)).save(runs / f"{name}.png")
EOF
step "spade translate on $DEVICE" 60 "${GAUGUIN[@]}" translate "$RUNS/spade" --labels "$RUNS/labels.png" --n 4 --device $DEVICE --out "$RUNS/t_spade"
step "pix2pixhd translate on $DEVICE" 60 "${GAUGUIN[@]}" translate "$RUNS/pix2pixhd" --labels "$RUNS/labels.png" --device $DEVICE --out "$RUNS/t_hd"
step "pix2pix translate on $DEVICE" 60 "${GAUGUIN[@]}" translate "$RUNS/pix2pix" --input "$RUNS/edges.png" --device $DEVICE --out "$RUNS/t_p2p"
step "cyclegan translate on $DEVICE" 60 "${GAUGUIN[@]}" translate "$RUNS/cyclegan" --input "$RUNS/garment.png" --direction AtoB --device $DEVICE --out "$RUNS/t_cyc"
for family in spade pix2pixhd pix2pix cyclegan; do
    grid=$(ls "$RUNS/$family"/samples/*.png 2>/dev/null | tail -1)
    [ -n "$grid" ] && cp "$grid" "$OUT_DIR/${family}_grid.png"
done

# a real layout: pix2pixHD on the Cityscapes frames of ../shared/fixtures (or $GAUGUIN_FIXTURES) at 512x256
FIXTURES=${GAUGUIN_FIXTURES:-../shared/fixtures}
if [ -d "$FIXTURES/cityscapes" ]; then
    step "pix2pixhd on cityscapes 512x256, $STEPS steps on $DEVICE" 180 "${GAUGUIN[@]}" train pix2pixhd \
        --data "cityscapes:$FIXTURES/cityscapes" split=val image_size=512 aspect_ratio=2.0 load_size=512 channels=3 \
        steps=$STEPS batch_size=1 out_dir="$RUNS/cityscapes" "${common[@]}"
    grid=$(ls "$RUNS/cityscapes"/samples/*.png 2>/dev/null | tail -1)
    [ -n "$grid" ] && cp "$grid" "$OUT_DIR/pix2pixhd_cityscapes_grid.png"
fi

# resume: 40 steps straight vs 20 steps + --resume to 40 (cuDNN may pick nondeterministic kernels)
straight=(steps=40 batch_size=32 device=$DEVICE progress=false checkpoint_every=20 eval_every=0 sample_every=1000)
step "resume: straight" 60 "${GAUGUIN[@]}" train dcgan out_dir="$RUNS/straight" "${straight[@]}"
step "resume: first half" 60 "${GAUGUIN[@]}" train dcgan out_dir="$RUNS/resumed" "${straight[@]/steps=40/steps=20}"
step "resume: second half" 60 "${GAUGUIN[@]}" train dcgan --resume out_dir="$RUNS/resumed" "${straight[@]}"
"$PY" - "$RUNS" <<'EOF'
import sys
from pathlib import Path
from safetensors.torch import load_file
runs = Path(sys.argv[1])
a, b = (load_file(runs / name / "checkpoints/step_0000040/weights.safetensors") for name in ("straight", "resumed"))
diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
print(f"resume: max |weight difference| straight vs resumed after 40 steps = {diff:.3g}")
EOF

step "bench/dcgan.py on $DEVICE" 180 "$PY" bench/dcgan.py --device $DEVICE --steps 50 $QUICK
step "bench/spade.py on $DEVICE" 240 "$PY" bench/spade.py --device $DEVICE --batches 1,8 $QUICK
rm -rf "$RUNS"
exit $status
