"""``torch.compile`` of a model, with a fallback to eager execution when compiling fails.

torch.compile works lazily: the model is traced and compiled at its first call (and again when
shapes or modes change), so that is where a failure shows. :class:`CompiledForward` then logs one
line naming the model and the error and runs the model eagerly from there on.
"""

from __future__ import annotations

from typing import Any, Callable

from msmtrec.models.base import MSMTModel


class CompiledForward:
    """``forward(batch)`` through ``torch.compile(model)``, or through ``model`` itself once
    compiling has failed (said once through ``echo``). Training and evaluation share it, so both
    run the same compiled module."""

    def __init__(self, model: MSMTModel, echo: Callable[[str], None]) -> None:
        import torch._dynamo  # deferred: only runs that ask for compilation pay for the import
        import torch._functorch.config

        # A compiled backward may reuse ("donate") the buffers it saved, which forbids a second
        # backward pass through the graph, and GradNorm takes its per-loss gradients with
        # retain_graph before the step's own backward. The setting is read when a graph is
        # compiled and when its backward runs, so it is the process's from here on.
        torch._functorch.config.donated_buffer = False
        self.model, self.echo = model, echo
        self.compiled: Callable[[Any], Any] | None = torch.compile(model)
        self._errors = (torch._dynamo.exc.TorchDynamoException,)

    @property
    def active(self) -> bool:
        """Whether calls still go through the compiled module."""
        return self.compiled is not None

    def __call__(self, batch: Any) -> Any:
        if self.compiled is not None:
            try:
                return self.compiled(batch)
            except self._errors as e:
                first = (str(e).strip().splitlines() or [""])[0][:200]
                self.echo(f"note: torch.compile failed for model '{self.model.name}' ({type(e).__name__}: {first}); "
                          f"running it eagerly")
                self.compiled = None
        return self.model(batch)
