"""Task-weighting strategies: how the per-loss values of a model become one scalar to backprop.

A strategy sees the vector of losses (``model.loss_names`` order) each step and returns the
total; it may keep its own learnable weights and optimiser (``after_step``). Strategies are
looked up by name in :data:`WEIGHTINGS`, so every model can use every strategy.

Data parallelism: a learnable strategy's weights live outside the model, so DistributedDataParallel
does not average their gradients; a strategy averages what it learns from over the ranks itself
with :attr:`TaskWeighting.average` (identity in one process; the trainer sets it to an all-reduce),
so every rank keeps the same weights.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, ClassVar

import torch

from msmtrec.errors import ConfigError

WEIGHTINGS: dict[str, type["TaskWeighting"]] = {}


def register_weighting(name: str):
    def deco(cls: type[TaskWeighting]) -> type[TaskWeighting]:
        cls.name = name
        WEIGHTINGS[name] = cls
        return cls

    return deco


class TaskWeighting:
    """Base strategy. Subclasses implement :meth:`combine` and may override the rest."""

    name: ClassVar[str] = "?"
    #: averages a tensor over the data-parallel ranks (set by the trainer; identity in one process)
    average: Callable[[torch.Tensor], torch.Tensor] = staticmethod(lambda t: t)
    #: the factor the step's total was scaled by for its backward pass (a gradient scaler's; set by
    #: the trainer under fp16; 1 otherwise)
    loss_scale: Callable[[], float] = staticmethod(lambda: 1.0)

    def __init__(self, loss_names: list[str], model: torch.nn.Module, initial: dict[str, float] | None = None) -> None:
        self.loss_names = list(loss_names)
        self.model = model
        initial = dict(initial or {})
        unknown = sorted(set(initial) - set(self.loss_names))
        if unknown:
            raise ConfigError(f"task_weights: unknown loss name(s) {', '.join(unknown)}; losses are {', '.join(self.loss_names)}")
        self.initial = torch.tensor([float(initial.get(n, 1.0)) for n in self.loss_names])

    def combine(self, losses: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def total(self, losses: torch.Tensor, aux: torch.Tensor | None = None) -> torch.Tensor:
        """What the step backpropagates: :meth:`combine` of the losses, plus the model's unweighted
        ``aux`` term (a regulariser) when it has one."""
        combined = self.combine(losses)
        return combined if aux is None else combined + aux

    def after_step(self) -> None:
        """Called after the model's optimiser step (learnable strategies update here)."""

    def weights(self) -> dict[str, float]:
        return {n: float(w) for n, w in zip(self.loss_names, self.initial)}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


@register_weighting("fixed")
class FixedWeighting(TaskWeighting):
    """``Σ_i w_i L_i`` with constant weights (``task_weights`` in the config, default 1)."""

    def combine(self, losses: torch.Tensor) -> torch.Tensor:
        return (self.initial.to(losses.device) * losses).sum()


def _model_device(model: torch.nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@register_weighting("gradnorm")
class GradNormWeighting(TaskWeighting):
    """GradNorm (Chen et al., ICML 2018; AEM²TL Eq. 26–29): loss weights ``w_i`` learned so that
    every loss trains the shared layer ``W`` (``model.shared_layer()``) at a rate that matches how
    far behind it is.

    Each step, with ``L̃_i = L_i(t) / L_i(0)`` and ``r_i = L̃_i / mean_j L̃_j`` (the relative inverse
    training rate: a loss that has come down less has a larger ``r_i``)::

        G_i   = ‖∇_W w_i L_i‖₂ = w_i ‖∇_W L_i‖₂
        L_grad = Σ_i | G_i − [mean_j G_j · r_i^α]_stopgrad |

    ``L_grad`` updates only the weights (their own Adam optimiser, stepped in :meth:`after_step`),
    which are then clamped positive and renormalised to ``Σ_i w_i = number of losses``. The model
    is trained on ``Σ_i w_i L_i`` with the weights held constant.

    Because ``∂G_i/∂w_i = ‖∇_W L_i‖₂`` exactly, only the per-loss gradient norms are needed: no
    second-order graph, and nothing is ever accumulated into the model's ``.grad``. Of ``n`` losses,
    ``n − 1`` get a backward pass of their own down to ``W`` (``retain_graph``); the step's own
    backward of the total then gives the last one, since the gradient reaching ``W`` is
    ``Σ_i w_i ∇_W L_i`` (plus an aux term's, measured on its own): ``∇_W L_k = (∇_W total −
    Σ_{i≠k} w_i ∇_W L_i) / w_k``. That saves one pass through the heads per step (AEM²TL, two
    losses: bf16 training 1.1× faster, docs/BENCHMARKS.md). ``k`` is the loss with the largest
    ``G_i`` of the previous update, so the subtraction cancels least. The step is therefore
    :meth:`total` (or :meth:`combine`), the backward of what it returned, then :meth:`after_step`.

    Args:
        alpha: ``α``, the strength of the restoring force (1.5 default; the papers' range 0.1–2).
        lr: learning rate of the weights' Adam optimiser.
        update_every: update the weights every N training steps (1 = every step, as in the paper;
            larger values save the per-loss backward passes).
        min_weight: floor applied before renormalising, which keeps every weight positive.

    Initial weights: the configured ``task_weights`` (default 1 each), renormalised to sum to the
    number of losses. ``L_i(0)`` is the first training batch's loss (per loss, the first batch in
    which it is non-zero).
    """

    def __init__(self, loss_names: list[str], model: torch.nn.Module, initial: dict[str, float] | None = None,
                 alpha: float = 1.5, lr: float = 1e-3, update_every: int = 1, min_weight: float = 1e-3) -> None:
        super().__init__(loss_names, model, initial)
        if alpha < 0:
            raise ConfigError(f"weighting gradnorm: alpha must be >= 0, got {alpha}")
        if lr <= 0:
            raise ConfigError(f"weighting gradnorm: lr must be > 0, got {lr}")
        if update_every < 1:
            raise ConfigError(f"weighting gradnorm: update_every must be >= 1, got {update_every}")
        if not 0 < min_weight < 1:
            raise ConfigError(f"weighting gradnorm: min_weight must be in (0, 1), got {min_weight}")
        if (self.initial <= 0).any():
            raise ConfigError("weighting gradnorm: task_weights must all be > 0")
        shared = getattr(model, "shared_layer", lambda: None)()
        if shared is None:
            raise ConfigError(f"weighting gradnorm needs a shared layer to measure gradient norms on; model "
                              f"'{getattr(model, 'name', type(model).__name__)}' has none (shared_layer() returned None)")
        # A model whose shared layer is part of a bank names the bank's parameter and the rows
        # that are shared: the gradient is taken on the parameter and measured on those rows.
        self.shared, self.shared_rows = shared if isinstance(shared, tuple) else (shared, None)
        self.alpha, self.update_every, self.min_weight = float(alpha), int(update_every), float(min_weight)
        n = len(self.loss_names)
        w0 = self.initial * (n / self.initial.sum())
        self.w = torch.nn.Parameter(w0.to(_model_device(model)))
        self.optimizer = torch.optim.Adam([self.w], lr=lr)
        self.initial_losses: torch.Tensor | None = None
        self.last_norms = torch.ones(n)  # G_i of the last update (picks the loss taken from the total)
        self.steps = 0
        self._step: _Measurement | None = None

    def combine(self, losses: torch.Tensor) -> torch.Tensor:
        self._drop_measurement()
        if losses.requires_grad and torch.is_grad_enabled() and self.steps % self.update_every == 0:
            self._step = _Measurement(self, losses)
        if losses.requires_grad:
            self.steps += 1
        return (self.w.detach().to(losses.device) * losses).sum()

    def total(self, losses: torch.Tensor, aux: torch.Tensor | None = None) -> torch.Tensor:
        out = super().total(losses, aux)
        if aux is not None and aux.requires_grad and self._step is not None:  # its gradient on W joins the total's
            self._step.add_known(aux)
        return out

    def _on_rows(self, g: torch.Tensor) -> torch.Tensor:
        return g if self.shared_rows is None else g[self.shared_rows]

    def _drop_measurement(self) -> None:
        if self._step is not None:
            self._step.hook.remove()
            self._step = None

    def after_step(self) -> None:
        step = self._step
        if step is None:
            return
        self._drop_measurement()
        norms = step.norms().to(self.w.device)
        # Over several ranks: the mean of the ranks' gradient norms and losses, so all take one step.
        norms, current = self.average(torch.cat([norms, step.losses.to(self.w.device)])).chunk(2)
        if not torch.isfinite(norms).all():  # an fp16 step whose gradients overflowed (the scaler skips it too)
            return
        if self.initial_losses is None:
            self.initial_losses = current.clone()
        else:  # a loss with no observed label in the first batch(es) gets its L(0) later
            self.initial_losses = torch.where(self.initial_losses > 0, self.initial_losses, current)
        g_w = self.w * norms  # G_i; differentiable in w only
        self.last_norms = g_w.detach().cpu()
        if not (self.initial_losses > 0).all():
            return
        ratio = current / self.initial_losses
        r = ratio / ratio.mean()
        target = (g_w.mean() * r ** self.alpha).detach()
        l_grad = (g_w - target).abs().sum()
        (self.w.grad,) = torch.autograd.grad(l_grad, self.w)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            self.w.clamp_(min=self.min_weight)
            self.w.mul_(len(self.loss_names) / self.w.sum())

    def weights(self) -> dict[str, float]:
        return {n: float(w) for n, w in zip(self.loss_names, self.w.detach().cpu())}

    def state_dict(self) -> dict[str, Any]:
        return {"w": self.w.detach().cpu().clone(), "initial_losses": self.initial_losses, "steps": self.steps,
                "last_norms": self.last_norms.clone(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.w.copy_(state["w"])
        self.initial_losses = None if state.get("initial_losses") is None else state["initial_losses"].to(self.w.device)
        self.steps = int(state.get("steps", 0))
        if "last_norms" in state:
            self.last_norms = state["last_norms"].clone()
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])


class _Measurement:
    """One GradNorm update's gradient norms on ``W``: every loss's but loss ``k``'s by its own
    backward pass, at :meth:`GradNormWeighting.combine`; loss ``k``'s from the gradient the
    step's backward brings to ``W`` (a hook), less the part the others and any aux term account
    for (``known``)."""

    def __init__(self, gn: GradNormWeighting, losses: torch.Tensor) -> None:
        self.gn, self.losses = gn, losses.detach()
        live = [i for i, loss in enumerate(losses.unbind(0)) if loss.requires_grad]
        self.w = gn.w.detach().to(losses.device)
        self.k = max(live, key=lambda i: float(gn.last_norms[i]))
        self._norms: list[torch.Tensor | None] = [torch.zeros((), device=losses.device) for _ in gn.loss_names]
        self._norms[self.k] = None
        self.known: torch.Tensor | None = None
        self._own_pass = False
        for i in live:
            if i != self.k:
                g = self._gradient(losses[i])
                if g is not None:
                    self._norms[i] = g.norm()
                    self._add(self.w[i] * g)
        self.hook = gn.shared.register_hook(self._from_total)

    def _gradient(self, value: torch.Tensor) -> torch.Tensor | None:
        self._own_pass = True  # the hook is for the step's backward, not for these passes
        try:
            (g,) = torch.autograd.grad(value, self.gn.shared, retain_graph=True, allow_unused=True)
        finally:
            self._own_pass = False
        return None if g is None else self.gn._on_rows(g)

    def _add(self, g: torch.Tensor) -> None:
        self.known = g if self.known is None else self.known + g

    def add_known(self, aux: torch.Tensor) -> None:
        g = self._gradient(aux)
        if g is not None:
            self._add(g)

    def _from_total(self, grad: torch.Tensor) -> None:
        if self._own_pass:
            return
        g = self.gn._on_rows(grad) / self.gn.loss_scale()
        if self.known is not None:
            g = g - self.known
        self._norms[self.k] = g.norm() / self.w[self.k]

    def norms(self) -> torch.Tensor:
        """``‖∇_W L_i‖`` for every loss (0 for a loss that does not reach ``W``)."""
        if self._norms[self.k] is None:
            if self.known is not None:  # W had a gradient to give, and the total's never came
                raise RuntimeError("GradNorm: after_step() came before the backward pass of the step's total")
            self._norms[self.k] = torch.zeros((), device=self.w.device)
        return torch.stack(self._norms).detach()


@register_weighting("uncertainty")
class UncertaintyWeighting(TaskWeighting):
    """Homoscedastic-uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018), classification form:
    with a learned log-variance ``s_i = log σ_i²`` per loss, ``total = Σ_i exp(−s_i) L_i + s_i / 2``.

    A loss the model cannot bring down gets a large ``σ_i`` and so a small weight ``exp(−s_i)``;
    the ``s_i / 2`` term stops every ``σ`` from growing without bound. The ``s_i`` receive their
    gradient from the same backward pass as the model and are stepped by their own Adam optimiser
    in :meth:`after_step`. :meth:`weights` reports ``exp(−s_i)``.

    Args:
        lr: learning rate of the log-variances' optimiser.

    Initial weights: the configured ``task_weights`` (``s_i = −log w_i``; default 1, i.e. ``s_i = 0``).
    """

    def __init__(self, loss_names: list[str], model: torch.nn.Module, initial: dict[str, float] | None = None,
                 lr: float = 1e-3) -> None:
        super().__init__(loss_names, model, initial)
        if lr <= 0:
            raise ConfigError(f"weighting uncertainty: lr must be > 0, got {lr}")
        if (self.initial <= 0).any():
            raise ConfigError("weighting uncertainty: task_weights must all be > 0")
        self.log_var = torch.nn.Parameter((-torch.log(self.initial)).to(_model_device(model)))
        self.optimizer = torch.optim.Adam([self.log_var], lr=lr)

    def combine(self, losses: torch.Tensor) -> torch.Tensor:
        s = self.log_var.to(losses.device)
        return (torch.exp(-s) * losses + 0.5 * s).sum()

    def after_step(self) -> None:
        if self.log_var.grad is not None:
            self.log_var.grad = self.average(self.log_var.grad)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)

    def weights(self) -> dict[str, float]:
        return {n: float(w) for n, w in zip(self.loss_names, torch.exp(-self.log_var.detach()).cpu())}

    def state_dict(self) -> dict[str, Any]:
        return {"log_var": self.log_var.detach().cpu().clone(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.log_var.copy_(state["log_var"])
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])


def build_weighting(name: str, loss_names: list[str], model: torch.nn.Module, initial: dict[str, float] | None,
                    params: dict[str, Any] | None) -> TaskWeighting:
    try:
        cls = WEIGHTINGS[name]
    except KeyError:
        raise ConfigError(f"unknown weighting '{name}'; available: {', '.join(sorted(WEIGHTINGS))}") from None
    params = dict(params or {})
    allowed = set(list(inspect.signature(cls.__init__).parameters)[4:])
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ConfigError(f"weighting '{name}' has no option(s) {', '.join(unknown)}; options: {', '.join(sorted(allowed)) or '(none)'}")
    return cls(loss_names, model, initial, **params)
