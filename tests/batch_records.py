"""A stand-in for the torch batch's shared record, for the batch record's tests."""

from __future__ import annotations

from typing import Any

import numpy as np


def every_run_on_its_driver(self: Any, *args: Any) -> tuple[np.ndarray, np.ndarray]:
    """In place of ``BatchRecord._fast_generation``: every run on its driver's record from the first
    generation (the per-run record the batch had before), none on the shared one."""
    return np.ones(len(self.drivers), bool), np.zeros(len(self.drivers), bool)
