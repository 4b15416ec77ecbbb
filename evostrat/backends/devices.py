"""The ``device`` argument of a run, resolved once into each library's own device object.

``ES(device=...)`` takes a name (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"gpu"``) or a
library's device object. Each backend turns it into what its arrays are placed with
(:meth:`~evostrat.backends.base.Backend.resolve_device`), or refuses it with an
:class:`~evostrat.errors.InvalidArgumentError` naming ``device``, before any array is made:
a device the library does not know or the machine does not have.

Examples
--------
>>> from evostrat.backends.devices import host_device
>>> host_device("cpu") is None
True
>>> host_device("cuda")
Traceback (most recent call last):
...
evostrat.errors.InvalidArgumentError: device must be None or 'cpu' for numpy arrays (host memory), got 'cuda'; for a GPU give x0 as a torch tensor or a JAX array, or pass backend='torch' or backend='jax'
"""

from __future__ import annotations

from typing import Any

from evostrat.errors import InvalidArgumentError

__all__ = ["host_device", "torch_device", "jax_device"]

#: Names of a GPU platform that JAX calls ``"gpu"``.
_GPU_NAMES = ("gpu", "cuda", "rocm")


def host_device(device: Any) -> None:
    """``device`` for arrays in host memory (numpy): only ``None`` or ``"cpu"``."""
    if device is None or (isinstance(device, str) and device.lower() == "cpu"):
        return None
    if str(getattr(device, "type", getattr(device, "platform", ""))).lower() == "cpu":
        return None  # torch.device("cpu"), a JAX CPU device
    raise InvalidArgumentError(f"device must be None or 'cpu' for numpy arrays (host memory), got {device!r}; "
                               "for a GPU give x0 as a torch tensor or a JAX array, or pass backend='torch' "
                               "or backend='jax'")


def torch_device(device: Any) -> Any:
    """``device`` as a ``torch.device`` this machine has (``None`` stays ``None``: ``x0``'s own);
    ``"gpu"`` and ``"gpu:i"`` (JAX's names) mean ``"cuda"`` and ``"cuda:i"``."""
    import torch

    if device is None:
        return None
    name = device if isinstance(device, (str, int, torch.device)) else str(device)
    if isinstance(name, str) and name.lower().partition(":")[0] == "gpu":
        name = "cuda" + name.lower()[3:]
    try:
        resolved = torch.device(name)
    except (RuntimeError, TypeError, ValueError) as err:
        raise InvalidArgumentError(f"device must be a torch device such as 'cpu' or 'cuda:0', got {device!r}") from err
    if resolved.type == "cpu":
        return resolved
    module = getattr(torch, resolved.type, None)  # torch.cuda, torch.mps, torch.xpu...
    available = getattr(module, "is_available", None)
    if available is None or not available():
        raise InvalidArgumentError(f"device {device!r}: torch has no {resolved.type!r} device on this machine")
    count = getattr(module, "device_count", None)
    if resolved.index is not None and count is not None and resolved.index >= count():
        raise InvalidArgumentError(f"device {device!r}: torch sees {count()} {resolved.type!r} device(s)")
    return resolved


def jax_device(device: Any) -> Any:
    """``device`` as a ``jax.Device``: a name ``"platform"`` or ``"platform:index"`` (``"cuda"``
    and ``"rocm"`` mean JAX's ``"gpu"``), a torch device's name, or a ``jax.Device`` as it is."""
    import jax

    if device is None or isinstance(device, jax.Device):
        return device
    name = str(device).lower()  # also a torch.device: str(torch.device("cuda", 1)) == "cuda:1"
    platform, _, index = name.partition(":")
    platform = "gpu" if platform in _GPU_NAMES else platform
    if not platform or (index and not index.isdigit()):
        raise InvalidArgumentError(f"device must be a JAX device or a name such as 'cpu' or 'gpu:0', got {device!r}")
    try:
        devices = jax.devices(platform)
    except RuntimeError as err:
        raise InvalidArgumentError(f"device {device!r}: JAX has no {platform!r} device on this machine") from err
    i = int(index or 0)
    if i >= len(devices):
        raise InvalidArgumentError(f"device {device!r}: JAX sees {len(devices)} {platform!r} device(s)")
    return devices[i]
