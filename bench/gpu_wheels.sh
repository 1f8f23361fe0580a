#!/usr/bin/env bash
# Download, here (with a package index), the wheels bench/gpu.sh installs on the lent GPU machine.
#
# That machine has no network. Its image has Python 3.12 with torch, torchvision, timm,
# huggingface_hub, numpy, scikit-learn, Pillow, httpx, anyio, click, h11, matplotlib, regex, tqdm,
# prometheus-client and more (.library/device/KINDS.md lists them), but not the rest of what
# `winnow serve` imports: FastAPI/Starlette, pydantic, uvicorn, SQLModel/SQLAlchemy, APScheduler,
# open_clip, FAISS, redis and botocore (both imported at start-up even when unused), and their own
# dependencies. They travel with the working tree (the device tool's `carry: ["bench/gpu_wheels"]`;
# 64 MiB at most for everything that travels), so the EfficientNet-Lite0 weight package stays
# behind: the GPU run uses ViT-B-32 at random init. Versions are those the local .venv tests with.
#
# Usage (from the repository root): bench/gpu_wheels.sh [DIR]   (default bench/gpu_wheels)
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-bench/gpu_wheels}
PIP=${PIP:-.venv/bin/pip}
mkdir -p "$DIR"
PACKAGES=(
  fastapi==0.165.0 starlette==1.10.0 annotated-types typing-inspection opentelemetry-api
  pydantic==2.14.4 pydantic-core==2.50.5 typing-extensions anyio sniffio
  uvicorn==0.54.0 python-multipart sqlmodel==0.0.50 sqlalchemy==2.1.9 greenlet
  apscheduler==3.11.3 tzlocal open-clip-torch==3.3.0 ftfy wcwidth faiss-cpu==1.15.1
  redis botocore jmespath
)
"$PIP" download --dest "$DIR" --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform any "${PACKAGES[@]}"
total=$(du -sb "$DIR" | cut -f1)
echo "gpu_wheels: $(ls "$DIR" | wc -l) wheels, $((total / 1024 / 1024)) MiB in $DIR"
if (( total > 56 * 1024 * 1024 )); then
  echo "gpu_wheels: too large: the working tree and the wheels must stay under 64 MiB" >&2
  exit 1
fi
