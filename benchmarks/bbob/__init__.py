"""COCO/BBOB runs of evostrat's CMA-ES family against pycma (issue 23).

``python -m benchmarks.bbob run ...`` runs one configuration (see
:data:`benchmarks.bbob.algorithms.ALGORITHMS`) on the ``bbob`` suite through
``cocoex``, writing COCO's data folder and one JSON record per problem;
``python -m benchmarks.bbob report ...`` turns several run folders into ECDF
figures (``cocopp``) and a markdown table of hits and aRT ratios computed from
the records. See ``benchmarks/bbob/README.md``.

BLAS runs single-threaded unless ``EVOSTRAT_BENCH_THREADS`` says otherwise
(as in ``benchmarks/conftest.py``); set before numpy loads.
"""

from __future__ import annotations

import os

_THREADS = os.environ.get("EVOSTRAT_BENCH_THREADS", "1")
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, _THREADS)
