#!/usr/bin/env bash
# Retrain every shipped super-resolution weight on one GPU, then export each (ONNX + model card,
# Set5 figures in the card) with `imgan export`:
#
#   srresnet-x4  SRResNet 16 blocks x 64 channels, L1, clean bicubic LR (the PSNR model, --model srresnet)
#   srresnet-x2  the same at x2 (one upsampling stage), from srresnet-x4's body: `imgan upscale --scale 2` uses it
#   srgan-x4     SRGAN fine-tune of srresnet-x4: VGG relu2_2 + adversarial (SRGAN's VGG-style critic)
#   realnet      srresnet-x4 fine-tuned on Real-ESRGAN's degradations (blur, resize, noise, JPEG), L1
#   real         realnet fine-tuned as an SRGAN on the same degradations, Real-ESRGAN's U-Net critic
#
# Every generator upsamples by nearest x2 + conv (--upsample nearest): with PixelShuffle the perceptual
# fine-tunes (srgan-x4, real) draw a faint 2-pixel grid on flat areas (plugins/imgan_srgan/model.py).
#
#   bench/train_shipped.sh                 # GPU (--device cuda, AMP, channels_last), ~12 min budget
#   SMOKE=1 bench/train_shipped.sh         # every stage with tiny steps and models on the CPU
#   IMGAN_HOME=/tmp/h OUT=/tmp/w SMOKE=1 bench/train_shipped.sh   # ...away from weights/ and ~/.cache
#
# Settings (environment): OUT (default: the repo's weights/), DATA (HR training photos), EVAL (HR
# folder measured at checkpoints and for the cards: Set5), VGG (VGG19 weights), WORKERS, and
# IMGAN_HOME (runs go to $IMGAN_HOME/runs/sr-shipped-*). Run folders are replaced (rm -rf) each time.
#
# The GPU step counts are sized from an estimate (SRResNet 16x64 at batch 16 ~10 ms/step with AMP on
# an H100/H200-class GPU, the data pipeline fed by WORKERS processes), not from a timed run: the
# script prints each stage's seconds; scale the *_STEPS below if the total misses the ~12 minute aim.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
IMGAN="${IMGAN:-$REPO/.venv/bin/imgan}"
export IMGAN_HOME="${IMGAN_HOME:-$HOME/.cache/imgan}"
OUT="${OUT:-$REPO/weights}"
ASSETS="$REPO/../shared/assets"
DATA="${DATA:-$IMGAN_HOME/data/sr-train}"
[ -d "$DATA" ] || DATA="$ASSETS/photos/bsds500/train"
EVAL="${EVAL:-$ASSETS/sr/Set5}"
VGG="${VGG:-$ASSETS/vgg19/vgg19_imagenet_conv1_1-conv3_4.pth}"
RUNS="$IMGAN_HOME/runs"

if [ "${SMOKE:-0}" = 1 ]; then
    # Tiny everything, on the CPU: checks the flags, the run-to-run starts and the exports, not quality.
    DEVICE=(--device cpu --threads "${THREADS:-1}")
    SPEED=()
    MODEL=(--channels 8 --blocks 1 --upsample nearest)
    WORKERS="${WORKERS:-0}"
    SR_STEPS=2; X2_STEPS=2; GAN_STEPS=2; REALNET_STEPS=2; REAL_STEPS=2
    BATCH=2; GAN_BATCH=2; CROP=32; X2_CROP=32; REAL_CROP=64; EVERY=2
    SMOKE_EVAL="$(mktemp -d)"
    trap 'rm -rf "$SMOKE_EVAL"' EXIT
    mkdir "$SMOKE_EVAL/Set5-bird"  # one image keeps the checkpoint and card measurements short
    cp "$EVAL/bird.png" "$SMOKE_EVAL/Set5-bird/"
    EVAL="$SMOKE_EVAL/Set5-bird"
else
    DEVICE=(--device cuda)
    SPEED=(--amp --channels-last)
    MODEL=(--channels 64 --blocks 16 --upsample nearest)
    WORKERS="${WORKERS:-12}"
    SR_STEPS="${SR_STEPS:-10000}"; X2_STEPS="${X2_STEPS:-6000}"; GAN_STEPS="${GAN_STEPS:-3000}"
    REALNET_STEPS="${REALNET_STEPS:-4000}"; REAL_STEPS="${REAL_STEPS:-3000}"
    BATCH=16; GAN_BATCH=16; CROP=96; X2_CROP=64; REAL_CROP=128; EVERY=1000
fi
COMMON=("${DEVICE[@]}" "${SPEED[@]}" "${MODEL[@]}" --data "$DATA" --eval-data "$EVAL" --workers "$WORKERS")
mkdir -p "$OUT" "$RUNS"

train() {  # train NAME STEPS [imgan train sr options...]: a fresh run in $RUNS/sr-shipped-NAME
    local name="$1" steps="$2"
    shift 2
    rm -rf "$RUNS/sr-shipped-$name"
    "$IMGAN" train sr --run-dir "$RUNS/sr-shipped-$name" --steps "$steps" --checkpoint-every "$(( steps < EVERY ? steps : EVERY ))" \
        "${COMMON[@]}" "$@"
}

export_weights() {  # export_weights RUN WEIGHTS-NAME: $OUT/sr-NAME.onnx and its card
    "$IMGAN" export sr "$RUNS/sr-shipped-$1/latest.pt" -o "$OUT/sr-$2.onnx" --overwrite
}

stage() {  # stage LABEL COMMAND...: runs it and prints its wall time
    local label="$1" started=$SECONDS
    shift
    echo "== $label"
    "$@"
    echo "== $label: $(( SECONDS - started )) s"
}

started=$SECONDS
stage "srresnet-x4 (L1, bicubic LR)" \
    train srresnet-x4 "$SR_STEPS" --stage srresnet --batch-size "$BATCH" --crop "$CROP" --lr 3e-4
stage "export srresnet-x4" export_weights srresnet-x4 srresnet-x4

stage "srresnet-x2 (from srresnet-x4's body: L1, bicubic LR)" \
    train srresnet-x2 "$X2_STEPS" --stage srresnet --scale 2 --init-from "$RUNS/sr-shipped-srresnet-x4/latest.pt" \
    --batch-size "$BATCH" --crop "$X2_CROP" --lr 2e-4
stage "export srresnet-x2" export_weights srresnet-x2 srresnet-x2

stage "srgan-x4 (from srresnet-x4: VGG relu2_2 + adversarial, vgg critic)" \
    train srgan-x4 "$GAN_STEPS" --stage srgan --init-from "$RUNS/sr-shipped-srresnet-x4/latest.pt" \
    --batch-size "$GAN_BATCH" --crop "$CROP" --vgg-weights "$VGG"
stage "export srgan-x4" export_weights srgan-x4 srgan-x4

stage "realnet (from srresnet-x4: L1, real-world LR)" \
    train realnet "$REALNET_STEPS" --stage srresnet --degrade real --init-from "$RUNS/sr-shipped-srresnet-x4/latest.pt" \
    --batch-size "$BATCH" --crop "$REAL_CROP" --lr 2e-4
stage "export realnet" export_weights realnet realnet-x4

stage "real (from realnet: SRGAN on real-world LR, U-Net critic)" \
    train real "$REAL_STEPS" --stage srgan --degrade real --init-from "$RUNS/sr-shipped-realnet/latest.pt" \
    --batch-size "$GAN_BATCH" --crop "$REAL_CROP" --vgg-weights "$VGG"
stage "export real" export_weights real real-x4

echo "all shipped sr weights retrained and exported to $OUT in $(( SECONDS - started )) s"
