"""The ``msmtrec`` command line. Errors caused by input print one or two lines (no traceback)
and exit with status 2."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from msmtrec.errors import MsmtrecError


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MsmtrecError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="msmtrec")
def main() -> None:
    """Multi-scenario multi-task recommendation: train, evaluate and compare MSMT models."""


def _parse_value(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


@main.command()
@click.option("--model", "-m", help="Model name (see `msmtrec models`). Default: shared_bottom.")
@click.option("--data", "-d", help="Built-in dataset name or dataset spec YAML. Default: womens-ecommerce.")
@click.option("--config", "-c", "config_path", type=click.Path(dir_okay=False), help="YAML config file (TrainConfig keys).")
@click.option("--epochs", type=int, help="Maximum epochs (per stage).")
@click.option("--batch-size", type=int)
@click.option("--lr", type=float, help="Adam learning rate.")
@click.option("--weight-decay", type=float)
@click.option("--patience", type=int, help="Early-stopping patience on validation mean AUC.")
@click.option("--seed", type=int)
@click.option("--weighting", help="Task weighting: fixed | gradnorm | uncertainty (default: the model's).")
@click.option("--threads", type=int, help="PyTorch CPU threads.")
@click.option("--device", help="cpu or cuda.")
@click.option("--row-limit", type=int, help="Use only the first N rows of the data.")
@click.option("--run-dir", help="Run directory to create (must not exist). Default: runs/<model>-<data>-<time>.")
@click.option("--runs-root", help="Parent folder of run directories (default: runs).")
@click.option("--set", "-p", "params", multiple=True, metavar="KEY=VALUE",
              help="Model hyperparameter, repeatable: -p embed_dim=32 -p tower_dims=[128,64].")
@click.option("--quiet", "-q", is_flag=True, help="Print only the results table.")
def train(model, data, config_path, epochs, batch_size, lr, weight_decay, patience, seed, weighting, threads, device,
          row_limit, run_dir, runs_root, params, quiet) -> None:
    """Train a model and print its per-scenario × task test results."""
    from msmtrec.config import TrainConfig
    from msmtrec.errors import ConfigError
    from msmtrec.report import results_table
    from msmtrec.train import train as run_train

    config = TrainConfig.from_yaml(config_path) if config_path else TrainConfig()
    overrides = {"model": model, "data": data, "max_epochs": epochs, "batch_size": batch_size, "lr": lr,
                 "weight_decay": weight_decay, "patience": patience, "seed": seed, "weighting": weighting,
                 "threads": threads, "device": device, "row_limit": row_limit, "run_dir": run_dir, "runs_root": runs_root}
    changes = {k: v for k, v in overrides.items() if v is not None}
    if params:
        mp = dict(config.model_params) if not model or model == config.model else {}
        for item in params:
            if "=" not in item:
                raise ConfigError(f"--set expects KEY=VALUE, got '{item}'")
            k, v = item.split("=", 1)
            mp[k.strip()] = _parse_value(v)
        changes["model_params"] = mp
    elif model and model != config.model:
        changes["model_params"] = {}  # a config's hyperparameters belong to its own model
    try:
        config = TrainConfig.from_dict({**config.to_dict(), **changes}, source="command line")
    except ConfigError:
        raise
    echo = (lambda _m: None) if quiet else (lambda m: click.echo(m, err=True))
    result = run_train(config, echo=echo)
    click.echo(results_table(result.test, title=f"{config.model} on {config.data} — test split"))
    if result.run_dir:
        click.echo(f"run directory: {result.run_dir}")


@main.command()
@click.argument("run_dir", type=click.Path())
@click.option("--data", "-d", help="Dataset spec or built-in name to evaluate on (default: the run's own test split).")
@click.option("--split", type=click.Choice(["test", "val", "train"]), default="test", show_default=True)
def evaluate(run_dir, data, split) -> None:
    """Evaluate a trained run on its test split (or another dataset, encoded with the run's encoders)."""
    from msmtrec.data import load_dataset
    from msmtrec.report import results_table
    from msmtrec.train import evaluate_model, load_run

    run = load_run(run_dir)
    prepared = load_dataset(data or run.config.data, row_limit=None if data else run.config.row_limit,
                            encoders=run.encoders)
    metrics = evaluate_model(run.model, getattr(prepared, split), run.schema, run.config.eval_batch_size)
    click.echo(results_table(metrics, title=f"{run.config.model} ({run_dir}) on {data or run.config.data} — {split} split"))


@main.command()
@click.argument("run_dir", type=click.Path())
@click.option("--input", "-i", "input_path", required=True, type=click.Path(), help="CSV or Parquet with the feature columns.")
@click.option("--output", "-o", "output_path", required=True, type=click.Path(), help="CSV or Parquet to write.")
@click.option("--unknown-scenario", type=click.Choice(["error", "skip"]), default="error", show_default=True,
              help="Rows whose scenario the model does not know: fail, or write empty probabilities and report them.")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
def predict(run_dir, input_path, output_path, unknown_scenario, overwrite) -> None:
    """Write one probability column per task (``<task>_prob``) next to the input's columns."""
    from msmtrec.predict import predict_file

    n, skipped = predict_file(run_dir, input_path, output_path, unknown_scenario=unknown_scenario, overwrite=overwrite)
    msg = f"wrote {n:,} rows to {output_path}"
    if skipped:
        msg += f"; {skipped:,} row(s) had a scenario the model does not know and got empty probabilities"
    click.echo(msg)


@main.command()
def models() -> None:
    """List the registered models and their hyperparameters."""
    from msmtrec.models import MODELS, model_hyperparameters

    for name in sorted(MODELS):
        cls = MODELS[name]
        doc = (cls.__module__ and sys.modules[cls.__module__].__doc__ or "").strip().splitlines()
        click.echo(f"{name:14s} {doc[0] if doc else ''}")
        hp = ", ".join(f"{k}={v!r}" for k, v in model_hyperparameters(cls).items())
        click.echo(f"{'':14s} options: {hp}")


@main.command()
def datasets() -> None:
    """List the built-in datasets with their scenarios, tasks and row counts."""
    from msmtrec.data import builtin_datasets, describe_dataset

    for name, spec_path in sorted(builtin_datasets().items()):
        info = describe_dataset(spec_path)
        click.echo(f"{name}: {info['rows']:,} rows")
        click.echo(f"  scenarios ({len(info['scenarios'])}): {', '.join(info['scenarios'])}")
        click.echo(f"  tasks ({len(info['tasks'])}): {', '.join(info['tasks'])}")
        click.echo(f"  spec: {spec_path}")


if __name__ == "__main__":  # pragma: no cover
    main()
