"""Search distributions that can be differentiated through.

``Normal`` (elementwise), ``DiagNormal`` (vector draws, diagonal covariance),
``MultivariateNormal`` (Cholesky-parameterised full covariance), ``LowRankNormal``
(``diag(sigma^2) + V V^T``, O(k d)) and ``StudentT`` (multivariate t), with
``torch.distributions``' vocabulary (``sample``, ``rsample``, ``log_prob``,
``entropy``) plus a closed-form ``score`` (gradient of the log density w.r.t.
each parameter), on numpy, torch and JAX. Pair them with
:func:`evostrat.expectation` to differentiate population statistics.

Examples
--------
>>> import numpy as np
>>> from evostrat.distributions import Normal, DiagNormal, MultivariateNormal
>>> p = DiagNormal(np.zeros(4), 0.1, mirrored=True)
>>> p.sample(6, key=1).shape
(6, 4)
"""

from evostrat.distributions.base import Distribution
from evostrat.distributions.low_rank_normal import LowRankNormal
from evostrat.distributions.multivariate_normal import MultivariateNormal
from evostrat.distributions.normal import DiagNormal, Normal
from evostrat.distributions.student_t import StudentT

__all__ = ["Distribution", "Normal", "DiagNormal", "MultivariateNormal", "LowRankNormal", "StudentT"]
