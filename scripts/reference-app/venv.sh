#!/usr/bin/env bash
# Makes scripts/reference-app/.venv with the reference app's pinned packages (when missing or broken).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/uvicorn ] || ! .venv/bin/python -c "import fastapi, multipart, PIL, numpy, onnxruntime" 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install -q -r requirements.txt
fi
