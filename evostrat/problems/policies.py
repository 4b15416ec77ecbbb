"""Torch policies for pixel observations: a conv net, the pytorch-es Convnet-LSTM, and VBN.

:class:`ConvPolicy` is the convolutional network of Mnih et al. (2015) that Salimans et
al. (2017) evolve on Atari (frame stack in, one output per action); :class:`ConvLSTMPolicy`
is the network of pytorch-es (four 3x3 stride-2 convolutions with 32 channels, an
``LSTMCell`` of 256 units and a linear head, on single 42x42 frames), which keeps its
recurrent state between calls until :meth:`~ConvLSTMPolicy.reset_state`. Both take
``activation="selu"`` (the pytorch-es advice: self-normalising units instead of batch
normalisation; Klambauer et al. 2017) or, with ``vbn=True``, **virtual batch
normalisation** after every convolution (Salimans et al. 2017, after Salimans et al. 2016):
each layer normalises with the mean and variance of a *reference batch* of observations
fixed at the start of training, computed through the candidate's own weights by
:func:`set_reference` and then frozen, so an action never depends on the other inputs of
a batch. Only ``gamma`` and ``beta`` of a VBN layer are parameters (searched by ES); its
statistics are buffers.

Examples
--------
>>> import torch
>>> from evostrat.problems.policies import ConvLSTMPolicy, set_reference
>>> net = ConvLSTMPolicy(n_actions=6)                       # the pytorch-es Pong network
>>> sum(p.numel() for p in net.parameters())
588710
>>> net(torch.zeros(1, 42, 42)).shape                       # one frame -> one output per action
torch.Size([6])
>>> vbn = ConvLSTMPolicy(n_actions=6, vbn=True, activation="elu")
>>> set_reference(vbn, torch.rand(16, 1, 42, 42))           # statistics fixed from here on
>>> vbn(torch.zeros(1, 42, 42)).shape
torch.Size([6])
"""

from __future__ import annotations

from typing import Any

try:
    import torch
    from torch import nn
except ImportError as err:
    raise ImportError("evostrat.problems.policies needs torch: pip install evostrat[torch]") from err

from evostrat.errors import InvalidArgumentError, StateError
from evostrat.problems.point_robot import positive_int

__all__ = ["ConvLSTMPolicy", "ConvPolicy", "VirtualBatchNorm", "make_policy", "set_reference"]

ACTIVATIONS = {"selu": nn.SELU, "elu": nn.ELU, "relu": nn.ReLU, "tanh": nn.Tanh}


class VirtualBatchNorm(nn.Module):
    """Batch normalisation with statistics of a fixed reference batch (Salimans et al. 2017).

    While :attr:`capturing` (set by :func:`set_reference`) a forward pass stores the mean
    and variance of its input over the batch (and the spatial axes of a 4-D input), then
    normalises with them; afterwards the stored statistics are used unchanged.

    Parameters
    ----------
    num_features : int
        Channels (4-D inputs ``(n, C, H, W)``) or features (2-D inputs ``(n, C)``).
    eps : float
        Added to the variance.
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features = positive_int("num_features", num_features)
        self.eps = float(eps)
        self.gamma = nn.Parameter(torch.ones(self.num_features))
        self.beta = nn.Parameter(torch.zeros(self.num_features))
        self.register_buffer("ref_mean", torch.zeros(self.num_features))
        self.register_buffer("ref_var", torch.ones(self.num_features))
        self.capturing = False
        self.has_reference = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        axes = (0, 2, 3) if x.dim() == 4 else (0,)
        if self.capturing:
            self.ref_mean = x.mean(dim=axes).detach()
            self.ref_var = x.var(dim=axes, unbiased=False).detach()
            self.has_reference = True
        elif not self.has_reference:
            raise StateError("VirtualBatchNorm has no reference statistics: call "
                             "evostrat.problems.policies.set_reference(module, batch) first")
        shape = (1, -1, 1, 1) if x.dim() == 4 else (1, -1)
        scale = self.gamma / torch.sqrt(self.ref_var + self.eps)
        return (x - self.ref_mean.view(shape)) * scale.view(shape) + self.beta.view(shape)


def set_reference(module: nn.Module, batch: Any) -> None:
    """Fix the statistics of every :class:`VirtualBatchNorm` in ``module`` from ``batch``.

    Runs ``module`` once on ``batch`` (observations ``(n, ...)``) without gradients with
    the VBN layers capturing, then resets a recurrent module's state. Call it after new
    weights are loaded: the statistics depend on the layers below each VBN layer.
    """
    layers = [m for m in module.modules() if isinstance(m, VirtualBatchNorm)]
    batch = torch.as_tensor(batch, dtype=next(module.parameters()).dtype)
    if batch.dim() < 2 or batch.shape[0] < 2:
        raise InvalidArgumentError(f"batch must hold at least 2 observations (n, ...), got shape "
                                   f"{tuple(batch.shape)}")
    for layer in layers:
        layer.capturing = True
    try:
        with torch.no_grad():
            module(batch)
    finally:
        for layer in layers:
            layer.capturing = False
        reset = getattr(module, "reset_state", None)
        if reset is not None:
            reset()


def uses_vbn(module: nn.Module) -> bool:
    """Whether ``module`` holds a :class:`VirtualBatchNorm` layer."""
    return any(isinstance(m, VirtualBatchNorm) for m in module.modules())


def _conv_stack(specs: list[tuple[int, int, int, int]], in_channels: int, activation: str,
                vbn: bool) -> nn.Sequential:
    """Convolutions ``(out, kernel, stride, padding)``, each followed by [VBN and] the activation."""
    if activation not in ACTIVATIONS:
        raise InvalidArgumentError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    layers: list[nn.Module] = []
    channels = positive_int("in_channels", in_channels)
    for out, kernel, stride, padding in specs:
        layers.append(nn.Conv2d(channels, out, kernel, stride=stride, padding=padding))
        if vbn:
            layers.append(VirtualBatchNorm(out))
        layers.append(ACTIVATIONS[activation]())
        channels = out
    return nn.Sequential(*layers)


def _flat_size(features: nn.Module, in_channels: int, size: int) -> int:
    with torch.no_grad():
        layers = [m for m in features if not isinstance(m, VirtualBatchNorm)]
        return int(nn.Sequential(*layers)(torch.zeros(1, in_channels, size, size)).numel())


def _batched(obs: Any, dtype: torch.dtype) -> tuple[torch.Tensor, bool]:
    x = torch.as_tensor(obs, dtype=dtype)
    if x.dim() == 2:  # one frame (H, W)
        x = x[None]
    single = x.dim() == 3
    return (x[None] if single else x), single


class ConvPolicy(nn.Module):
    """The Atari conv net of Mnih et al. (2015) / Salimans et al. (2017): frames -> action outputs.

    Convolutions 32x8x8 stride 4, 64x4x4 stride 2, 64x3x3 stride 1, a dense layer of
    ``hidden`` units and a linear output per action.

    Parameters
    ----------
    n_actions : int
    in_channels : int
        Stacked frames.
    size : int
        Frame height and width.
    hidden : int
    activation : {"selu", "elu", "relu", "tanh"}
    vbn : bool
        Virtual batch normalisation after every convolution (see :func:`set_reference`).
    """

    def __init__(self, n_actions: int, in_channels: int = 4, size: int = 84, hidden: int = 512,
                 activation: str = "selu", vbn: bool = False) -> None:
        super().__init__()
        self.config = {"kind": "conv", "n_actions": n_actions, "in_channels": in_channels, "size": size,
                       "hidden": hidden, "activation": activation, "vbn": vbn}
        self.features = _conv_stack([(32, 8, 4, 0), (64, 4, 2, 0), (64, 3, 1, 0)], in_channels, activation, vbn)
        flat = _flat_size(self.features, in_channels, positive_int("size", size))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(flat, positive_int("hidden", hidden)),
                                  ACTIVATIONS[activation](), nn.Linear(hidden, positive_int("n_actions", n_actions)))

    def forward(self, obs: Any) -> torch.Tensor:
        """Outputs ``(n, n_actions)`` for ``(n, C, H, W)``, ``(n_actions,)`` for one ``(C, H, W)``."""
        x, single = _batched(obs, self.head[1].weight.dtype)
        out = self.head(self.features(x))
        return out[0] if single else out


class ConvLSTMPolicy(nn.Module):
    """The pytorch-es Atari network: 4 conv layers (32 channels, 3x3, stride 2), LSTM 256, linear.

    The LSTM state persists between calls (one call per time step of an episode) until
    :meth:`reset_state`; a batch of ``n`` inputs keeps ``n`` states.

    Parameters
    ----------
    n_actions : int
    in_channels : int
        Frames per input (pytorch-es: 1, the LSTM remembers the rest).
    size : int
        Frame height and width (pytorch-es: 42).
    hidden : int
        LSTM units.
    activation : {"selu", "elu", "relu", "tanh"}
        pytorch-es uses elu in its model file and recommends selu.
    vbn : bool
        Virtual batch normalisation after every convolution.
    """

    def __init__(self, n_actions: int, in_channels: int = 1, size: int = 42, hidden: int = 256,
                 activation: str = "selu", vbn: bool = False) -> None:
        super().__init__()
        self.config = {"kind": "conv_lstm", "n_actions": n_actions, "in_channels": in_channels, "size": size,
                       "hidden": hidden, "activation": activation, "vbn": vbn}
        self.features = _conv_stack([(32, 3, 2, 1)] * 4, in_channels, activation, vbn)
        flat = _flat_size(self.features, in_channels, positive_int("size", size))
        self.lstm = nn.LSTMCell(flat, positive_int("hidden", hidden))
        self.head = nn.Linear(hidden, positive_int("n_actions", n_actions))
        self.state: tuple[torch.Tensor, torch.Tensor] | None = None

    def reset_state(self) -> None:
        """Forget the recurrent state (call at the start of each episode)."""
        self.state = None

    def forward(self, obs: Any) -> torch.Tensor:
        """Outputs ``(n, n_actions)`` for ``(n, C, H, W)``, ``(n_actions,)`` for one ``(C, H, W)``."""
        x, single = _batched(obs, self.head.weight.dtype)
        h = self.features(x).flatten(1)
        if self.state is not None and self.state[0].shape[0] != h.shape[0]:
            self.state = None  # a batch of another size starts fresh
        self.state = self.lstm(h, self.state)
        out = self.head(self.state[0])
        return out[0] if single else out


def make_policy(config: dict[str, Any]) -> nn.Module:
    """The policy a ``config`` dict describes (a policy's ``config`` attribute, e.g. from a checkpoint).

    >>> make_policy(ConvLSTMPolicy(n_actions=6).config).config["kind"]
    'conv_lstm'
    """
    kinds = {"conv": ConvPolicy, "conv_lstm": ConvLSTMPolicy}
    if not isinstance(config, dict) or config.get("kind") not in kinds:
        raise InvalidArgumentError(f"config must be a dict with 'kind' in {sorted(kinds)}, got {config!r}")
    return kinds[config["kind"]](**{k: v for k, v in config.items() if k != "kind"})
