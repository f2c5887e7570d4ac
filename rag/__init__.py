"""ragops shared core: settings, types, encoders, store, retrieval, answers, reports."""

import os as _os

# Torch's OpenMP threads spin after each call by default; next to ONNX Runtime (the judge) on
# 2 cores they starved each other: query embedding p50 7 -> 33 ms, p95 450 ms. Passive waiting
# must be set before OpenMP loads, hence here, before anything imports torch.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
