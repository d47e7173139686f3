"""The ``msmtrec`` command line. Errors caused by input print one or two lines (no traceback)
and exit with status 2."""

from __future__ import annotations

import os
import re
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import click

from msmtrec.errors import DataWarning, MsmtrecError


def _rank() -> int:
    """The rank torchrun gave this process (0 when not launched by it)."""
    return int(os.environ.get("RANK", "0"))


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MsmtrecError as e:
            if not getattr(e, "from_main", False) or _rank() == 0:  # one line, not one per rank
                click.echo(f"error: {e}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            if _rank() == 0:
                click.echo("interrupted", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="msmtrec")
def main() -> None:
    """Multi-scenario multi-task recommendation: train, evaluate and compare MSMT models."""


def _parse_value(text: str) -> Any:
    """A ``KEY=VALUE`` value read as YAML (``32``, ``[128,64]``, ``1e-3``), or as text if it is not YAML."""
    from msmtrec.errors import ConfigError
    from msmtrec.yaml_io import load_yaml

    try:
        return load_yaml(text, "value", ConfigError)
    except ConfigError:
        return text


@main.command()
@click.option("--model", "-m", help="Model name (see `msmtrec models`). Default: shared_bottom.")
@click.option("--data", "-d", help="Built-in dataset name or dataset spec YAML. Default: womens-ecommerce.")
@click.option("--config", "-c", "config_path", type=click.Path(dir_okay=False), help="YAML config file (TrainConfig keys).")
@click.option("--preset", help="The model's named training settings, e.g. code or paper (see `msmtrec models`); "
                               "options you give explicitly win.")
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
@click.option("--stream", "streaming", is_flag=True, default=None,
              help="Stream the train split from disk through a shuffle buffer (data larger than memory).")
@click.option("--shuffle-buffer", type=int, help="Rows in the streaming shuffle buffer (default 262144).")
@click.option("--resume", "resume_dir", type=click.Path(),
              help="Continue the unfinished run in RUN_DIR after its last completed epoch (its own config).")
@click.option("--nproc", type=click.IntRange(min=1),
              help="Train data-parallel on N processes of this machine (as torchrun --nproc-per-node N).")
@click.option("--log-to", "log_to", metavar="LOGGERS",
              help="Also log the run to experiment trackers: tensorboard, mlflow or tensorboard,mlflow.")
@click.option("--precision", help="fp32 (default) | bf16 (autocast, CPU or CUDA) | fp16 (CUDA, gradient scaler).")
@click.option("--compile", "compile_", is_flag=True, default=None,
              help="Run the model through torch.compile (eager, with a note, if compiling fails).")
@click.option("--quiet", "-q", is_flag=True, help="Print only the results table.")
def train(model, data, config_path, preset, epochs, batch_size, lr, weight_decay, patience, seed, weighting, threads,
          device, row_limit, run_dir, runs_root, params, streaming, shuffle_buffer, resume_dir, nproc, log_to,
          precision, compile_, quiet) -> None:
    """Train a model and print its per-scenario × task test results."""
    from msmtrec.config import TrainConfig
    from msmtrec.errors import ConfigError
    from msmtrec.report import results_table
    from msmtrec.train import train as run_train

    if config_path:
        config = TrainConfig.from_yaml(config_path)
    elif resume_dir:
        if not (Path(resume_dir) / "config.yaml").is_file():
            raise ConfigError(f"cannot resume {resume_dir}: not a msmtrec run directory (no config.yaml)")
        config = TrainConfig.from_yaml(Path(resume_dir) / "config.yaml")
    else:
        config = TrainConfig()
    changes = _given(model=model, data=data, preset=preset, max_epochs=epochs, batch_size=batch_size, lr=lr,
                     weight_decay=weight_decay, patience=patience, seed=seed, weighting=weighting, threads=threads,
                     device=device, row_limit=row_limit, run_dir=run_dir, runs_root=runs_root, streaming=streaming,
                     shuffle_buffer=shuffle_buffer, loggers=_names(log_to), precision=precision, compile=compile_)
    if params:
        mp = dict(config.model_params) if not model or model == config.model else {}
        changes["model_params"] = {**mp, **_key_values(params, "--set")}
    elif model and model != config.model:
        changes["model_params"] = {}  # a config's hyperparameters belong to its own model
    # Only the keys given (file or command line) count as set, so that a preset fills the others.
    config = TrainConfig.from_dict({**config.model_dump(exclude_unset=True), **changes}, source="command line")
    if nproc is not None and nproc > 1:
        sys.exit(_launch_ranks(nproc, config, resume_dir, quiet))
    echo = (lambda _m: None) if quiet else (lambda m: click.echo(m, err=True))
    result = run_train(config, echo=echo, resume=resume_dir)
    if _rank() == 0:
        click.echo(results_table(result.test, title=f"{config.model} on {result.dataset} — test split"))
        if result.run_dir:
            click.echo(f"run directory: {result.run_dir}")


def _given(**options: Any) -> dict[str, Any]:
    """The options the user gave (click passes None for the others)."""
    return {k: v for k, v in options.items() if v is not None}


def _names(text: str | None) -> list[str] | None:
    """A comma-separated option as a list (None when the option is not given)."""
    return None if text is None else [n.strip() for n in text.split(",") if n.strip()]


def _launch_ranks(nproc: int, config: Any, resume_dir: str | None, quiet: bool) -> int:
    """``train --nproc N``: the resolved config, checked here (a bad option, device or run
    directory, or a refused resume, is one line and starts nothing), trained by N ranks started as
    torchrun would start them."""
    import tempfile

    from msmtrec.errors import ConfigError
    from msmtrec.files import atomic_write
    from msmtrec.train.api import check_start, resolve_device
    from msmtrec.train.distributed import launch
    from msmtrec.yaml_io import dump_yaml

    if "WORLD_SIZE" in os.environ:
        raise ConfigError("--nproc starts its own processes; under torchrun leave it out")
    from msmtrec.models import resolve_preset

    config = resolve_preset(config)  # the ranks read every key from a file: a preset must be filled in first
    resolve_device(config.device)
    check_start(config, resume=resume_dir, world_size=nproc, load=False)
    with tempfile.TemporaryDirectory(prefix="msmtrec-") as tmp:
        path = Path(tmp) / "config.yaml"
        atomic_write(path, dump_yaml(config.to_dict()))
        args = ["train", "--config", str(path)] + (["--resume", resume_dir] if resume_dir else []) + (["-q"] if quiet else [])
        return launch(nproc, args)


@main.command()
@click.argument("run_dir", type=click.Path())
@click.option("--data", "-d", help="Dataset spec or built-in name to evaluate on, as it is now (default: the run's own "
                                   "data, refused if it changed since training).")
@click.option("--split", type=click.Choice(["test", "val", "train"]), default="test", show_default=True)
def evaluate(run_dir, data, split) -> None:
    """Evaluate a trained run on its own test split (the same rows as in training), or on another
    dataset encoded with the run's encoders."""
    from msmtrec.report import results_table
    from msmtrec.train import evaluate_model, load_run, run_dataset

    run = load_run(run_dir)
    _note_unfinished(run_dir)
    dataset = run_dataset(run, data)
    for warning in dataset.report["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    metrics = evaluate_model(run.model, dataset.split(split), run.schema, run.config.eval_batch_size)
    click.echo(results_table(metrics, title=f"{run.config.model} ({run_dir}) on {dataset.spec.name} — {split} split"))


@main.command()
@click.argument("model_dir", metavar="RUN_OR_EXPORT", type=click.Path())
@click.option("--input", "-i", "input_path", required=True, type=click.Path(), help="CSV or Parquet with the feature columns.")
@click.option("--output", "-o", "output_path", required=True, type=click.Path(), help="CSV or Parquet to write.")
@click.option("--unknown-scenario", type=click.Choice(["error", "skip"]), default="error", show_default=True,
              help="Rows without a scenario or with one the model does not know: fail, or write empty probabilities "
                   "and count them.")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option("--threads", type=int, help="Threads of the runtime (ONNX Runtime or PyTorch); default: its own.")
def predict(model_dir, input_path, output_path, unknown_scenario, overwrite, threads) -> None:
    """Write one probability column per task (``<task>_prob``) next to the input's columns, with
    the model of a run directory or an export folder (``msmtrec export``)."""
    from msmtrec.predict import predict_file

    _note_unfinished(model_dir)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        n, skipped = predict_file(model_dir, input_path, output_path, unknown_scenario=unknown_scenario,
                                  overwrite=overwrite, threads=threads)
    for w in caught:  # the data's, as one line each; anything else as Python shows it
        if issubclass(w.category, DataWarning):
            click.echo(f"warning: {w.message}", err=True)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    msg = f"wrote {n:,} rows to {output_path}"
    if skipped:
        msg += f"; {skipped:,} row(s) had no scenario or one the model does not know and got empty probabilities"
    click.echo(msg)


def _note_unfinished(run_dir: str) -> None:
    from msmtrec.train.run_dir import unfinished_note

    note = unfinished_note(Path(run_dir))
    if note:
        click.echo(note, err=True)


@main.command()
@click.argument("run_dir", type=click.Path())
@click.option("--format", "-f", "fmt", required=True, type=click.Choice(["onnx", "torchscript"]),
              help="Graph format: ONNX (ONNX Runtime, Triton, ...) or TorchScript (libtorch, TorchServe).")
@click.option("--out", "-o", "out_dir", required=True, type=click.Path(), help="Export folder to write.")
@click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset of the graph (13-20).")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it is an export folder already.")
def export(run_dir, fmt, out_dir, opset, overwrite) -> None:
    """Write a trained run's model as a graph of the encoded inputs, with the run's encoders, schema
    and a manifest (versions, inputs and outputs, sha256 of every file); `msmtrec predict` and
    `msmtrec.export.Scorer` read it."""
    from msmtrec.export import export_run

    out = export_run(run_dir, fmt, out_dir, overwrite=overwrite, opset=opset)
    click.echo(f"wrote {fmt} export of {run_dir} to {out}")


@main.command()
def models() -> None:
    """List the registered models, their hyperparameters and presets, and where each sends its input.

    Every model embeds a row as its categorical fields' embeddings, its numeric features and one
    pooled vector per multi_categorical (mean or sum) and sequence (mean, sum or target attention
    against the row's own item), side by side; 'input:' says where that vector goes.
    """
    from msmtrec.models import MODELS, model_hyperparameters

    for name in sorted(MODELS):
        cls = MODELS[name]
        click.echo(_wrapped(f"{name:14s} {_first_sentence(sys.modules[cls.__module__].__doc__ or '')}"))
        hp = ", ".join(f"{k}={v!r}".replace(", ", ",") for k, v in model_hyperparameters(cls).items())
        click.echo(_wrapped(f"{'':14s} options: {hp}"))
        for preset_name, preset in sorted(cls.presets.items()):
            click.echo(_wrapped(f"{'':14s} --preset {preset_name}: {preset.describe()}  [{preset.source}]"))
        click.echo(_wrapped(f"{'':14s} input: {cls.inputs}"))


def _first_sentence(doc: str) -> str:
    """The first sentence of a docstring's first paragraph, whole ("et al." does not end it)."""
    paragraph = " ".join(doc.strip().split("\n\n")[0].split())
    end = re.search(r"(?<!\bal)[.!?](?=\s|$)", paragraph)
    return paragraph[:end.end()] if end else paragraph


def _wrapped(line: str) -> str:
    return textwrap.fill(line, width=100, subsequent_indent=" " * 15, break_on_hyphens=False)


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


def _key_values(items: tuple[str, ...], option: str) -> dict[str, Any]:
    from msmtrec.errors import ConfigError

    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"{option} expects KEY=VALUE, got '{item}'")
        k, v = item.split("=", 1)
        out[k.strip()] = _parse_value(v)
    return out


@main.command()
@click.argument("name", required=False)
@click.option("--raw", "raw_dir", type=click.Path(), help="Folder with the downloaded files.")
@click.option("--out", "out_dir", type=click.Path(), help="Folder to write the dataset to.")
@click.option("--set", "-p", "options", multiple=True, metavar="KEY=VALUE", help="Recipe option, repeatable.")
@click.option("--overwrite", is_flag=True, help="Replace a dataset already in OUT.")
@click.option("--list", "list_recipes", is_flag=True, help="List the recipes, their files and options.")
def prepare(name, raw_dir, out_dir, options, overwrite, list_recipes) -> None:
    """Turn a downloaded public dataset (ml-1m, kuairand, ali-ccp, aliexpress) into a ready dataset:
    Parquet train/val/test, spec.yaml and manifest.json with the inputs' sha256."""
    from msmtrec.data.recipes import RECIPES, prepare as run_prepare
    from msmtrec.errors import ConfigError

    if list_recipes or not name:
        for r in RECIPES.values():
            click.echo(f"{r.name}: {r.title}")
            click.echo(f"  files: {r.expected}")
            click.echo(f"  source: {r.source}")
            for k, (default, text) in r.options.items():
                click.echo(f"  -p {k}=...  {text} (default {default})")
        return
    if not raw_dir or not out_dir:
        raise ConfigError("prepare needs --raw DIR (the downloaded files) and --out DIR")
    spec = run_prepare(name, raw_dir, out_dir, overwrite=overwrite, options=_key_values(options, "--set"),
                       echo=lambda m: click.echo(m, err=True))
    click.echo(f"wrote {spec}; train with: msmtrec train --data {spec}")


@main.command()
@click.option("--out", "out_dir", required=True, type=click.Path(), help="Folder to write the dataset to.")
@click.option("--rows", type=int, default=100_000, show_default=True)
@click.option("--fields", "num_fields", type=int, default=7, show_default=True, help="Categorical fields.")
@click.option("--vocab", type=int, default=1000, show_default=True, help="Ids per categorical field.")
@click.option("--numeric", "num_numeric", type=int, default=0, show_default=True, help="Numeric features.")
@click.option("--scenarios", type=int, default=3, show_default=True)
@click.option("--tasks", type=int, default=2, show_default=True)
@click.option("--scenario-signal", type=float, default=0.5, show_default=True,
              help="Share of the label signal that is scenario specific (0: labels ignore the scenario).")
@click.option("--task-correlation", type=float, default=0.5, show_default=True)
@click.option("--structure", type=click.Choice(["nested", "independent"]), default="nested", show_default=True,
              help="nested: click → post-click tasks (entire-space roles); independent: unrelated tasks.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--chunk-rows", type=int, default=1_000_000, show_default=True, help="Rows per Parquet row group.")
@click.option("--set", "-p", "options", multiple=True, metavar="KEY=VALUE",
              help="Any other SyntheticConfig field, e.g. -p base_rates=[0.1,0.05] -p with_user=true.")
@click.option("--overwrite", is_flag=True, help="Replace a dataset already in OUT.")
def synth(out_dir, rows, num_fields, vocab, num_numeric, scenarios, tasks, scenario_signal, task_correlation,
          structure, seed, chunk_rows, options, overwrite) -> None:
    """Write a synthetic MSMT dataset with known structure (Parquet in row groups + spec.yaml)."""
    from msmtrec.data.synthetic import SyntheticConfig, write_synthetic

    fields = {"rows": rows, "num_fields": num_fields, "vocab": vocab, "num_numeric": num_numeric,
              "scenarios": scenarios, "tasks": tasks, "scenario_signal": scenario_signal,
              "task_correlation": task_correlation, "structure": structure, "seed": seed}
    config = SyntheticConfig.from_dict({**fields, **_key_values(options, "--set")})
    spec = write_synthetic(out_dir, config, chunk_rows=chunk_rows, overwrite=overwrite,
                           progress=lambda n: click.echo(f"  {n:,} / {config.rows:,} rows", err=True))
    click.echo(f"wrote {spec}; train with: msmtrec train --data {spec}")


@main.command()
@click.option("--models", "-m", help="Comma-separated model names, e.g. shared_bottom,mmoe,ple (default: the models "
                                     "of the --model-config files).")
@click.option("--data", "-d", help="Built-in dataset name or dataset spec YAML. Default: womens-ecommerce.")
@click.option("--seeds", default="1,2,3", show_default=True, help="Comma-separated seeds; one run per model × seed.")
@click.option("--baseline", help="Model for the RelaImpr column (default: the first model).")
@click.option("--out", "out_dir", required=True, type=click.Path(), help="Folder for bench.md/csv/json and the plot.")
@click.option("--config", "-c", "config_path", type=click.Path(dir_okay=False),
              help="YAML config with the common training settings (TrainConfig keys).")
@click.option("--epochs", type=int, help="Maximum epochs (per stage).")
@click.option("--batch-size", type=int)
@click.option("--lr", type=float)
@click.option("--patience", type=int)
@click.option("--threads", type=int)
@click.option("--row-limit", type=int, help="Use only the first N rows of the data.")
@click.option("--stream", "streaming", is_flag=True, default=None, help="Stream the train split from disk.")
@click.option("--set", "-p", "params", multiple=True, metavar="MODEL.KEY=VALUE",
              help="A model's hyperparameter, repeatable: -p ple.num_levels=1.")
@click.option("--model-config", "model_config_paths", multiple=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="A model's own config (e.g. a tune's best_config.yaml), repeatable: its model is benchmarked "
                   "with its settings; data, threads and loggers stay the bench's.")
@click.option("--keep-runs", is_flag=True, help="Also write every run's directory under OUT/runs.")
@click.option("--log-to", "log_to", metavar="LOGGERS", help="Log every run to tensorboard and/or mlflow (needs --keep-runs).")
@click.option("--overwrite", is_flag=True, help="Replace bench files already in OUT.")
def bench(models, data, seeds, baseline, out_dir, config_path, epochs, batch_size, lr, patience, threads, row_limit,
          streaming, params, model_config_paths, keep_runs, log_to, overwrite) -> None:
    """Compare models × seeds on one dataset: mean ± std of AUC/logloss per scenario × task,
    RelaImpr, parameters, time, samples/s (Markdown, CSV, JSON, plot)."""
    from pathlib import Path as _Path

    from msmtrec.bench import run_bench
    from msmtrec.config import TrainConfig
    from msmtrec.errors import ConfigError
    from msmtrec.report.bench_files import check_out_dir, write_bench

    names = _names(models) or []
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--seeds expects comma-separated integers, got '{seeds}'") from None
    per_model: dict[str, dict[str, Any]] = {}
    for key, value in _key_values(params, "--set").items():
        if "." not in key:
            raise ConfigError(f"--set expects MODEL.KEY=VALUE, got '{key}'")
        m, k = key.split(".", 1)
        per_model.setdefault(m, {})[k] = value
    base = TrainConfig.from_yaml(config_path) if config_path else TrainConfig()
    changes = _given(max_epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, threads=threads,
                     row_limit=row_limit, streaming=streaming, data=data, loggers=_names(log_to))
    base = TrainConfig.from_dict({**base.to_dict(), **changes, "model_params": {}}, source="command line")
    own: dict[str, TrainConfig] = {}
    for path in model_config_paths:
        cfg = TrainConfig.from_yaml(path)
        if cfg.model in own:
            raise ConfigError(f"bench: two --model-config files for model '{cfg.model}'")
        own[cfg.model] = TrainConfig.from_dict({**cfg.to_dict(), **changes}, source="command line")
    names += [m for m in own if m not in names]
    if not names:
        raise ConfigError("bench needs --models or --model-config")
    out = _Path(out_dir)
    check_out_dir(out, overwrite)  # fail before hours of training, not after
    result = run_bench(names, base.data, seed_list, base=base, baseline=baseline or names[0], model_params=per_model,
                       model_configs=own, echo=lambda m: click.echo(m, err=True),
                       runs_root=out / "runs" if keep_runs else None)
    paths = write_bench(result, out, overwrite=True)
    click.echo(paths["markdown"].read_text())
    click.echo("wrote " + ", ".join(str(p) for p in paths.values()))


@main.command()
@click.option("--model", "-m", required=True, help="Model to tune (see `msmtrec models`).")
@click.option("--data", "-d", help="Built-in dataset name or dataset spec YAML. Default: womens-ecommerce.")
@click.option("--space", "space_path", required=True, type=click.Path(dir_okay=False),
              help="Search space YAML: setting → {type: int|float|categorical, low, high, step, log, choices}.")
@click.option("--trials", type=click.IntRange(min=1), required=True,
              help="The study's total of finished (complete + pruned) trials; a continued study counts its earlier ones.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Start no trial after S seconds.")
@click.option("--storage", help="Optuna storage URL shared by parallel or continued tunes. Default: sqlite:///OUT/study.db.")
@click.option("--study", "study_name", help="Study name in the storage. Default: <model>-<dataset>.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for trials.md/csv, best_config.yaml, the plot and the best trial's run.")
@click.option("--config", "-c", "config_path", type=click.Path(dir_okay=False),
              help="YAML config with the settings trials do not draw (TrainConfig keys).")
@click.option("--epochs", type=int, help="Maximum epochs (per stage) of every trial.")
@click.option("--batch-size", type=int)
@click.option("--patience", type=int)
@click.option("--seed", type=int, help="Training seed of every trial (the same for all, so they compare settings).")
@click.option("--threads", type=int)
@click.option("--device")
@click.option("--row-limit", type=int, help="Use only the first N rows of the data.")
@click.option("--set", "-p", "params", multiple=True, metavar="KEY=VALUE", help="A fixed model hyperparameter, repeatable.")
@click.option("--sampler-seed", type=int, help="Seed the TPE sampler (a reproducible single-process study).")
@click.option("--no-retrain", is_flag=True, help="Skip training the best config again and its test evaluation.")
@click.option("--log-to", "log_to", metavar="LOGGERS", help="Log the best config's final run to tensorboard and/or mlflow.")
def tune(model, data, space_path, trials, timeout, storage, study_name, out_dir, config_path, epochs, batch_size,
         patience, seed, threads, device, row_limit, params, sampler_seed, no_retrain, log_to) -> None:
    """Search a model's hyperparameters and training settings with Optuna (TPE, median pruning on the
    validation score after each epoch); the test split is evaluated once, for the best trial."""
    from msmtrec.config import TrainConfig
    from msmtrec.tune import run_tune

    base = TrainConfig.from_yaml(config_path) if config_path else TrainConfig()
    changes = _given(data=data, max_epochs=epochs, batch_size=batch_size, patience=patience, seed=seed,
                     threads=threads, device=device, row_limit=row_limit, loggers=_names(log_to))
    model_params = dict(base.model_params) if base.model == model else {}
    model_params.update(_key_values(params, "--set"))
    base = TrainConfig.from_dict({**base.to_dict(), **changes, "model": model, "model_params": model_params},
                                 source="command line")
    result = run_tune(model, space_path, out_dir, trials=trials, base=base, timeout=timeout, storage=storage,
                      study_name=study_name, sampler_seed=sampler_seed, retrain=not no_retrain,
                      echo=lambda m: click.echo(m, err=True))
    click.echo(result.files["markdown"].read_text())
    click.echo("wrote " + ", ".join(str(p) for p in result.files.values()))


if __name__ == "__main__":  # pragma: no cover
    main()
