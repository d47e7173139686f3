"""What the synthetic generator makes (:class:`SyntheticConfig`): sizes, the structure of the
signal, the planted history, the names; validated by pydantic, one line per mistake. The generating
process itself is described and implemented in :mod:`msmtrec.data.synthetic`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError, model_validator

from msmtrec.data.encoded import DataSchema
from msmtrec.declared import explain, problem
from msmtrec.errors import ConfigError

__all__ = ["SyntheticConfig"]


class SyntheticConfig(BaseModel):
    """What to generate. Every field has a default except ``rows``.

    Attributes:
        rows: number of rows.
        num_fields: categorical fields ``cat_0 .. cat_{F-1}``.
        vocab: ids per categorical field (one int for all, or one per field); ids are
            ``1..vocab``, 0 is never generated.
        num_numeric: numeric features ``num_0 .. num_{D-1}``.
        scenarios: number of scenarios ``s0 .. s{S-1}``.
        tasks: number of binary tasks.
        scenario_signal: ``α`` in [0, 1], the share of the label signal that is scenario specific
            (0: labels do not depend on the scenario).
        task_correlation: ``ρ`` in [0, 1], how much the tasks share their direction.
        structure: ``nested`` (click → post-click tasks, entire-space roles declared) or
            ``independent``.
        base_rates: pooled positive rate per task (for nested tasks after the first: the rate
            given a click). Default: 0.2 for task 0 (0.5 when independent), 0.1 for nested
            later tasks, 0.3 for independent later tasks.
        scenario_weights: relative scenario sizes (default equal).
        zipf: exponent of the id popularity law (0 = uniform ids).
        latent_dim: ``K``, dimension of the latent representation.
        signal_scale: multiplies the task score; larger means more predictable labels.
        scenario_bias_scale: standard deviation of the per-scenario base-rate shift at ``α = 1``.
        with_user: treat ``cat_0`` as the user id (``has_user``; enables GAUC).
        history_len: > 0: items follow the users' drifting interests (``cat_2`` becomes the
            item's group), the files get a ``time`` column and the spec a history of this many
            items built from the log (step 7).
        history_signal: weight of the interest match in every logit (needs a history).
        interest_groups: ``G``, the interest groups the items of ``cat_1`` fall into.
        interest_share: share of rows whose item comes from the user's current interest.
        interest_period: ``P``, rows between a user's interest changes (default: the vocabulary
            of ``cat_0`` × ``2 · history_len``, i.e. about ``2 · history_len`` events of a user
            of average activity, so that most of a history shows the current interest).
        task_names: names of the tasks (default ``click, conversion`` / ``click, action_1, ...,
            conversion`` for nested, ``task_0 ...`` for independent).
        seed: seeds everything.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rows: Annotated[StrictInt, Field(ge=1)]
    num_fields: Annotated[StrictInt, Field(ge=1)] = 7
    vocab: Annotated[StrictInt, Field(ge=1)] | tuple[Annotated[StrictInt, Field(ge=1)], ...] = 1000
    num_numeric: Annotated[StrictInt, Field(ge=0)] = 0
    scenarios: Annotated[StrictInt, Field(ge=1)] = 3
    tasks: Annotated[StrictInt, Field(ge=1)] = 2
    scenario_signal: Annotated[float, Field(ge=0, le=1)] = 0.5
    task_correlation: Annotated[float, Field(ge=0, le=1)] = 0.5
    structure: Literal["nested", "independent"] = "nested"
    base_rates: tuple[Annotated[float, Field(gt=0, lt=1)], ...] | None = None
    scenario_weights: tuple[Annotated[float, Field(gt=0)], ...] | None = None
    zipf: Annotated[float, Field(ge=0)] = 1.05
    latent_dim: Annotated[StrictInt, Field(ge=1)] = 8
    signal_scale: Annotated[float, Field(ge=0)] = 2.0
    scenario_bias_scale: Annotated[float, Field(ge=0)] = 0.75
    with_user: StrictBool = False
    history_len: Annotated[StrictInt, Field(ge=0)] = 0
    history_signal: Annotated[float, Field(ge=0)] = 0.0
    interest_groups: Annotated[StrictInt, Field(ge=2)] = 8
    interest_share: Annotated[float, Field(ge=0, le=1)] = 0.7
    interest_period: Annotated[StrictInt, Field(ge=1)] | None = None
    task_names: tuple[StrictStr, ...] | None = None
    seed: Annotated[StrictInt, Field(ge=0)] = 0

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError(f"synthetic: {explain(exc, SyntheticConfig, 'the synthetic config')}") from None

    @model_validator(mode="after")
    def _one_per(self) -> "SyntheticConfig":
        for key, value, count, what in (
                ("vocab", None if isinstance(self.vocab, int) else self.vocab, self.num_fields, "ints (one per field)"),
                ("base_rates", self.base_rates, self.tasks, "numbers (one per task)"),
                ("scenario_weights", self.scenario_weights, self.scenarios, "numbers (one per scenario)"),
                ("task_names", self.task_names, self.tasks, "distinct names")):
            if value is not None and len(value) != count or key == "task_names" and value and len(set(value)) != count:
                raise problem(f"{key} must be {'one int or ' if key == 'vocab' else ''}{count} {what}, got {{got}}",
                              got=list(value))
        if self.history_signal > 0 and self.history_len == 0:
            raise problem("history_signal needs a history: set history_len > 0")
        if self.history_len and (self.num_fields < 3 or self.vocabularies[1] < self.interest_groups
                                 or self.vocabularies[2] < self.interest_groups):
            raise problem("a history needs num_fields >= 3 (cat_0 the user, cat_1 the item, cat_2 its group) and "
                          "at least interest_groups ({groups}) ids in cat_1 and cat_2", groups=self.interest_groups)
        return self

    @property
    def period(self) -> int:
        """``P``: rows between a user's interest changes."""
        return self.interest_period or self.vocabularies[0] * 2 * self.history_len

    @property
    def vocabularies(self) -> tuple[int, ...]:
        if isinstance(self.vocab, int):
            return (self.vocab,) * self.num_fields
        return tuple(self.vocab)

    @property
    def names_of_tasks(self) -> tuple[str, ...]:
        if self.task_names is not None:
            return tuple(self.task_names)
        if self.structure == "independent":
            return tuple(f"task_{t}" for t in range(self.tasks))
        if self.tasks == 1:
            return ("click",)
        return ("click",) + tuple(f"action_{t}" for t in range(1, self.tasks - 1)) + ("conversion",)

    @property
    def task_roles(self) -> dict[str, str]:
        """Entire-space roles (nested only): first task click, last conversion, others action."""
        if self.structure != "nested":
            return {}
        return {name: "click" if t == 0 else "conversion" if t == self.tasks - 1 else "action"
                for t, name in enumerate(self.names_of_tasks)}

    @property
    def rates(self) -> tuple[float, ...]:
        if self.base_rates is not None:
            return tuple(float(r) for r in self.base_rates)
        if self.structure == "nested":
            return (0.2,) + (0.1,) * (self.tasks - 1)
        return (0.5,) + (0.3,) * (self.tasks - 1)

    @property
    def categorical_names(self) -> tuple[str, ...]:
        return tuple(f"cat_{f}" for f in range(self.num_fields))

    @property
    def numeric_names(self) -> tuple[str, ...]:
        return tuple(f"num_{j}" for j in range(self.num_numeric))

    @property
    def scenario_names(self) -> tuple[str, ...]:
        return tuple(f"s{s}" for s in range(self.scenarios))

    def schema(self) -> DataSchema:
        """The :class:`DataSchema` of the in-memory data (cardinality = vocab + 1 for id 0)."""
        return DataSchema(
            categorical=tuple((n, v + 1) for n, v in zip(self.categorical_names, self.vocabularies)),
            numeric=self.numeric_names,
            scenarios=self.scenario_names,
            tasks=self.names_of_tasks,
            task_roles=self.task_roles,
            conversion_without_click=False,
            prior_fields=("cat_0",) if self.with_user else (),
            has_user=self.with_user,
        )

    def replace(self, **changes: Any) -> "SyntheticConfig":
        return SyntheticConfig(**{**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SyntheticConfig":
        return cls(**d)
