r"""Optimizers: SGD with momentum, Adam and RMSprop.

An optimizer is given a list of layers (a :class:`~tinygan.nn.Sequential` brings all of its children) and
keeps its own state per parameter. ``step()`` reads ``layer.grads`` and updates ``layer.params`` in
place; it zeroes nothing: the training step calls :meth:`Optimizer.zero_grad` itself, visibly.

With :math:`g` the gradient of parameter :math:`p` and :math:`\eta` the learning rate:

* SGD (momentum :math:`\mu`, PyTorch's form): :math:`b \leftarrow \mu b + g`,
  :math:`p \leftarrow p - \eta b`.
* Adam (PyTorch's form), at step :math:`t = 1, 2, \dots`:
  :math:`m \leftarrow \beta_1 m + (1 - \beta_1) g`, :math:`v \leftarrow \beta_2 v + (1 - \beta_2) g^2`,
  :math:`\hat m = m / (1 - \beta_1^t)`, :math:`\hat v = v / (1 - \beta_2^t)`,
  :math:`p \leftarrow p - \eta\, \hat m / (\sqrt{\hat v} + \epsilon)`.
* RMSprop (Keras' form): :math:`v \leftarrow \rho v + (1 - \rho) g^2`,
  :math:`p \leftarrow p - \eta\, g / (\sqrt{v} + \epsilon)`.

The constructors check every setting (``lr`` a finite number > 0, ``momentum``, the betas and
``rho`` in [0, 1), ``eps`` a finite number > 0) and refuse layers with nothing to train, each in one
sentence naming the argument. ``lr`` is checked again whenever it is set, as schedules do between
steps; a schedule may bring it down to 0.

:meth:`Optimizer.step` applies the rule to one parameter after another
(:func:`update_parameters`), the specification. Each rule is elementwise, so it can also run over
all parameters at once: with the kernels on, a registered fast path (:mod:`tinygan.overrides`,
:mod:`tinygan.kernels.flat`) homes the parameters, their gradients and the state in one flat buffer
per dtype and applies the rule with one call per buffer, with the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from tinygan.backend import Array, get_array_module, to_device, to_numpy
from tinygan.nn.layer import Layer, number_in
from tinygan.overrides import overridable

# The update rules, in place. Python floats are weak scalars for NumPy and CuPy: they act in the
# parameter's dtype, so a float32 model stays float32.


@overridable
def sgd_update(
    param: Array, grad: Array, velocity: Array | None, lr: float, momentum: float
) -> None:
    r"""One SGD step: :math:`b \leftarrow \mu b + g`, :math:`p \leftarrow p - \eta b`.

    ``velocity`` is the momentum buffer :math:`b`, updated in place; ``None`` for plain SGD,
    :math:`p \leftarrow p - \eta g`.
    """
    step = grad
    if velocity is not None:
        velocity *= momentum
        velocity += grad
        step = velocity
    param -= lr * step


@overridable
def adam_update(
    param: Array,
    grad: Array,
    m: Array,
    v: Array,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    step: int,
) -> None:
    r"""One Adam step at step ``t = step >= 1``, PyTorch's form.

    :math:`m \leftarrow \beta_1 m + (1 - \beta_1) g`, :math:`v \leftarrow \beta_2 v + (1 - \beta_2) g^2`,
    :math:`\hat m = m / (1 - \beta_1^t)`, :math:`\hat v = v / (1 - \beta_2^t)`,
    :math:`p \leftarrow p - \eta\, \hat m / (\sqrt{\hat v} + \epsilon)`.
    The moments ``m`` and ``v`` are updated in place.
    """
    xp = get_array_module(param)
    m *= beta1
    m += (1 - beta1) * grad
    v *= beta2
    v += (1 - beta2) * (grad * grad)
    m_hat = m / (1 - beta1**step)
    v_hat = v / (1 - beta2**step)
    param -= lr * m_hat / (xp.sqrt(v_hat) + eps)


@overridable
def rmsprop_update(param: Array, grad: Array, v: Array, lr: float, rho: float, eps: float) -> None:
    r"""One RMSprop step, Keras' form: :math:`v \leftarrow \rho v + (1 - \rho) g^2`,
    :math:`p \leftarrow p - \eta\, g / (\sqrt{v} + \epsilon)`, with ``v`` updated in place."""
    xp = get_array_module(param)
    v *= rho
    v += (1 - rho) * (grad * grad)
    param -= lr * grad / (xp.sqrt(v) + eps)


class Optimizer:
    """Common machinery: the parameter list, per-parameter state, zero_grad, saving and moving."""

    #: names of the per-parameter state arrays, created as zeros like the parameter
    state_names: tuple[str, ...] = ()

    def __init__(self, layers: Iterable[Layer], lr: float) -> None:
        self.layers = trainable_layers(layers, type(self).__name__)
        # Positive here, where 0 can only be a slip; the setter also allows a schedule's final 0.
        self.lr = number_in(lr, "(0, inf)", "lr", type(self).__name__)
        self.step_count = 0
        self.state: list[dict[str, Any]] = [
            {name: get_array_module(p).zeros_like(p) for name in self.state_names}
            for _, _, p, _ in self.slots()
        ]

    @property
    def lr(self) -> float:
        """The learning rate; set it between steps to follow a schedule (checked on every set)."""
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = number_in(value, "[0, inf)", "lr", type(self).__name__)

    def slots(self) -> Iterator[tuple[Layer, str, Any, Any]]:
        """``(layer, name, param, grad)`` for every trainable parameter, in a fixed order."""
        seen = set()
        for root in self.layers:
            for layer in root.walk():
                if id(layer) in seen:
                    continue
                seen.add(id(layer))
                for name, param in layer.params.items():
                    yield layer, name, param, layer.grads[name]

    def zero_grad(self) -> None:
        """Set the gradients of every parameter this optimizer updates to zero."""
        zero_gradients(self)

    def step(self) -> None:
        """Apply one update to every parameter, in place."""
        self.step_count += 1
        update_parameters(self)

    def update(self, param: Array, grad: Array, state: dict[str, Any]) -> None:
        """Update one parameter in place with its gradient and state (subclasses implement the
        rule). The rule is elementwise: a flat buffer of many parameters is updated alike."""
        raise NotImplementedError

    def hyperparameters(self) -> dict[str, float]:
        """The settings saved with the state (learning rate and the rule's constants)."""
        return {"lr": self.lr}

    def state_dict(self) -> dict[str, Any]:
        """Step count, hyperparameters and state arrays (NumPy copies), keyed ``"<index>.<name>"``."""
        out: dict[str, Any] = {"step_count": self.step_count, **self.hyperparameters()}
        for index, state in enumerate(self.state):
            for name, value in state.items():
                out[f"{index}.{name}"] = to_numpy(value).copy()
        return out

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (into the existing arrays, on their device)."""
        for index, state in enumerate(self.state):
            for name, value in state.items():
                key = f"{index}.{name}"
                if key not in saved or tuple(np.shape(saved[key])) != tuple(value.shape):
                    raise KeyError(f"optimizer state {key} missing or of the wrong shape")
                value[...] = get_array_module(value).asarray(saved[key], dtype=value.dtype)
        self.step_count = int(saved["step_count"])
        for name in self.hyperparameters():
            setattr(self, name, float(saved[name]))

    def to(self, device: str) -> Optimizer:
        """Move the state arrays to ``device`` (the layers are moved by ``layer.to``)."""
        for state in self.state:
            for name, value in state.items():
                state[name] = to_device(value, device)
        return self


@overridable
def update_parameters(optimizer: Optimizer) -> None:
    """Apply ``optimizer``'s rule to each of its parameters in turn, with its gradient and state.

    A parameter that appears twice (a weight tied between two layers) is updated once per
    appearance, as written.
    """
    for (_, _, param, grad), state in zip(optimizer.slots(), optimizer.state, strict=True):
        optimizer.update(param, grad, state)


@overridable
def zero_gradients(optimizer: Optimizer) -> None:
    """Set the gradient of each of ``optimizer``'s parameters to zero, in place."""
    for _, _, _, grad in optimizer.slots():
        grad[...] = 0


def trainable_layers(layers: Iterable[Layer], optimizer: str) -> list[Layer]:
    """``layers`` as a list (a single Layer becomes a list of one), checked: Layer objects only, and
    at least one parameter among them, else an error naming ``optimizer``."""
    wanted = f"{optimizer} takes a Layer or a list of Layer objects"
    if isinstance(layers, Layer):
        layers = [layers]
    elif not isinstance(layers, Iterable):
        raise TypeError(f"{wanted}, got {type(layers).__name__}")
    layers = list(layers)
    for index, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError(f"{wanted}, got {type(layer).__name__} at position {index}")
    if not any(sub.params for layer in layers for sub in layer.walk()):
        names = ", ".join(type(layer).__name__ for layer in layers)
        got = {0: "an empty list", 1: f"{names}, which has none"}.get(
            len(layers), f"{names}, none of which has any"
        )
        raise ValueError(f"{optimizer} needs layers with parameters to update, got {got}")
    return layers


class SGD(Optimizer):
    """Stochastic gradient descent with optional (heavy-ball) momentum."""

    def __init__(self, layers: Iterable[Layer], lr: float, momentum: float = 0.0) -> None:
        self.momentum = number_in(momentum, "[0, 1)", "momentum", type(self).__name__)
        self.state_names = ("velocity",) if self.momentum else ()
        super().__init__(layers, lr)

    def update(self, param: Array, grad: Array, state: dict[str, Any]) -> None:
        velocity = state["velocity"] if self.momentum else None
        sgd_update(param, grad, velocity, self.lr, self.momentum)

    def hyperparameters(self) -> dict[str, float]:
        return {"lr": self.lr, "momentum": self.momentum}


class Adam(Optimizer):
    """Adam with PyTorch's bias-corrected update ``p -= lr * m_hat / (sqrt(v_hat) + eps)``."""

    state_names = ("m", "v")

    def __init__(
        self,
        layers: Iterable[Layer],
        lr: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
    ) -> None:
        self.beta1 = number_in(beta1, "[0, 1)", "beta1", type(self).__name__)
        self.beta2 = number_in(beta2, "[0, 1)", "beta2", type(self).__name__)
        self.eps = number_in(eps, "(0, inf)", "eps", type(self).__name__)
        super().__init__(layers, lr)

    def update(self, param: Array, grad: Array, state: dict[str, Any]) -> None:
        adam_update(
            param,
            grad,
            state["m"],
            state["v"],
            self.lr,
            self.beta1,
            self.beta2,
            self.eps,
            self.step_count,
        )

    def hyperparameters(self) -> dict[str, float]:
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}


class RMSprop(Optimizer):
    """RMSprop as in Keras: ``v = rho v + (1 - rho) g^2``, ``p -= lr g / (sqrt(v) + eps)``."""

    state_names = ("v",)

    def __init__(
        self, layers: Iterable[Layer], lr: float = 1e-3, rho: float = 0.9, eps: float = 1e-7
    ) -> None:
        self.rho = number_in(rho, "[0, 1)", "rho", type(self).__name__)
        self.eps = number_in(eps, "(0, inf)", "eps", type(self).__name__)
        super().__init__(layers, lr)

    def update(self, param: Array, grad: Array, state: dict[str, Any]) -> None:
        rmsprop_update(param, grad, state["v"], self.lr, self.rho, self.eps)

    def hyperparameters(self) -> dict[str, float]:
        return {"lr": self.lr, "rho": self.rho, "eps": self.eps}
