"""KuaiRand-Pure and KuaiRand-1K (Kuaishou short-video logs, Gao et al. CIKM'22, CC BY-SA 4.0) in
the multi-scenario framing of AutoIFS and Scenario-Wise-Rec.

Raw files (from kuairand.com; ``KuaiRand-Pure/data/`` or ``KuaiRand-1K/data/``, ``<v>`` is
``pure`` or ``1k``):

- logs ``log_standard_4_08_to_4_21_<v>.csv``, ``log_standard_4_22_to_5_08_<v>.csv``,
  ``log_random_4_22_to_5_08_<v>.csv`` (columns ``user_id, video_id, date, hourmin, time_ms,
  is_click, is_like, is_follow, is_comment, is_forward, is_hate, long_view, play_time_ms,
  duration_ms, profile_stay_time, comment_stay_time, is_profile_enter, is_rand, tab``);
- ``user_features_<v>.csv`` (``user_id, user_active_degree, is_lowactive_period, ...,
  register_days_range, onehot_feat0..17``);
- ``video_features_basic_<v>.csv`` (``video_id, author_id, video_type, upload_dt, upload_type,
  visible_status, video_duration, server_width, server_height, music_id, music_type, tag``).

Framing (AutoIFS ``datatransform/``, models.md §4.5):

- one row per log entry (all logs found, or only the standard/random ones), joined with the
  user's features and the video's basic features;
- scenarios = ``tab`` ∈ {0, 1, 4} by default (``tabs`` option), rows of other tabs are dropped
  here and counted in the manifest; tab is also an input field (``scenario_as_feature``);
- tasks ``is_click`` and ``long_view`` (the log's own column; ``play_time_ms >= duration_ms``
  where a log lacks it); ``extra_tasks`` adds other log labels (``is_like, is_follow, ...``);
- features: user and video ids, the user's categorical and one-hot features, author, video type,
  upload type, visibility, music type, first tag; counts and durations as ``log1p`` numerics;
  nothing measured after the impression (play time, stay times) is a feature;
- split: seeded random 80/10/10 (seed 2021, as AutoIFS), assigned row by row while streaming.

Deviation: AutoIFS buckets numerics above 2 as ``floor(ln(v)^2)`` and also uses the video
statistics file; here numerics are ``log1p``-standardised and the statistics file is not used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from msmtrec.data.io import DataFile, hash_split
from msmtrec.data.recipes.base import Lookup, Recipe, SplitWriter, check_fractions, find_file, require_files
from msmtrec.errors import ConfigError, DataError

LOGS = {
    "standard": ["log_standard_4_08_to_4_21", "log_standard_4_22_to_5_08"],
    "random": ["log_random_4_22_to_5_08"],
}
LOG_LABELS = ["is_click", "is_like", "is_follow", "is_comment", "is_forward", "is_hate", "long_view",
              "is_profile_enter"]
USER_CATEGORICAL = ["user_active_degree", "is_lowactive_period", "is_live_streamer", "is_video_author",
                    "follow_user_num_range", "fans_user_num_range", "friend_user_num_range", "register_days_range"] + \
                   [f"onehot_feat{i}" for i in range(18)]
USER_NUMERIC = ["follow_user_num", "fans_user_num", "friend_user_num", "register_days"]
VIDEO_CATEGORICAL = ["author_id", "video_type", "upload_type", "visible_status", "music_type"]
VIDEO_NUMERIC = ["server_width", "server_height"]
EXPECTED = ("log_standard_4_22_to_5_08_<v>.csv (and/or the other standard/random logs), user_features_<v>.csv and "
            "video_features_basic_<v>.csv with <v> = pure or 1k (KuaiRand-Pure/data or KuaiRand-1K/data)")


def _variant(raw: Path, wanted: str) -> str:
    if wanted != "auto":
        if wanted not in ("pure", "1k"):
            raise ConfigError(f"kuairand: option variant must be auto, pure or 1k, got {wanted!r}")
        return wanted
    for v in ("pure", "1k"):
        if find_file(raw, [f"user_features_{v}.csv"]) is not None:
            return v
    raise DataError(f"kuairand: {raw} is missing user_features_pure.csv or user_features_1k.csv (expected {EXPECTED})")


def _read_side(path: Path, columns: list[str], key: str, numeric: list[str]) -> tuple[pa.Table, list[str]]:
    """A feature file, keeping the wanted columns it has; ids as int64, categories as text."""
    header = DataFile(path).columns
    if key not in header:
        raise DataError(f"kuairand: {path.name} has no column '{key}'")
    present = [c for c in columns if c in header]
    types = {c: (pa.float64() if c in numeric else pa.string()) for c in present}
    types[key] = pa.int64()
    if "author_id" in present:
        types["author_id"] = pa.int64()
    try:
        table = DataFile(path, column_types=types).read([key] + present)
    except DataError as exc:
        raise DataError(f"kuairand: {exc}") from None
    return table, present


def build(raw: Path, writer: SplitWriter, options: dict[str, Any]) -> tuple[dict[str, Any], list[Path]]:
    v = _variant(raw, str(options["variant"]))
    kinds = str(options["logs"])
    if kinds not in ("all", "standard", "random"):
        raise ConfigError(f"kuairand: option logs must be all, standard or random, got {kinds!r}")
    stems = LOGS["standard"] + LOGS["random"] if kinds == "all" else LOGS[kinds]
    logs = [p for p in (find_file(raw, [f"{s}_{v}.csv"]) for s in stems) if p is not None]
    if not logs:
        raise DataError(f"kuairand: {raw} has none of " + ", ".join(f"{s}_{v}.csv" for s in stems)
                        + f" (expected {EXPECTED})")
    side = require_files("kuairand", raw, {"users": [f"user_features_{v}.csv"],
                                           "videos": [f"video_features_basic_{v}.csv"]}, EXPECTED)
    fractions = check_fractions(options["fractions"], 3, "kuairand option fractions")
    tabs = _int_list(options["tabs"], "tabs")
    extra = [t.strip() for t in str(options["extra_tasks"] or "").split(",") if t.strip()]
    bad = [t for t in extra if t not in LOG_LABELS or t in ("is_click", "long_view")]
    if bad:
        raise ConfigError(f"kuairand: option extra_tasks has {', '.join(bad)}; choose among "
                          f"{', '.join(t for t in LOG_LABELS if t not in ('is_click', 'long_view'))}")

    users, user_cols = _read_side(side["users"], USER_CATEGORICAL + USER_NUMERIC, "user_id", USER_NUMERIC)
    videos, video_cols = _read_side(side["videos"], VIDEO_CATEGORICAL + VIDEO_NUMERIC + ["tag"], "video_id",
                                    VIDEO_NUMERIC)
    if "tag" in video_cols:  # "8,33" → "8": the first (main) tag
        videos = videos.set_column(videos.schema.get_field_index("tag"), "tag",
                                   pc.list_element(pc.split_pattern(videos.column("tag"), ","), 0))
    user_lookup = Lookup(users, "user_id", f"kuairand: {side['users'].name}")
    video_lookup = Lookup(videos, "video_id", f"kuairand: {side['videos'].name}")

    labels = ["is_click", "long_view"] + extra
    writer.track(labels=labels, scenario="tab")
    base_cols = ["user_id", "video_id", "date", "tab", "duration_ms", "play_time_ms"]
    types = {c: pa.int64() for c in ["user_id", "video_id", "date", "tab"]}
    types.update({c: pa.float64() for c in ["duration_ms", "play_time_ms"]})
    types.update({c: pa.int8() for c in labels})
    dropped_tab = row = 0
    for log in logs:
        header = DataFile(log).columns
        missing = [c for c in base_cols + ["is_click"] + extra if c not in header]
        if missing:
            raise DataError(f"kuairand: {log.name} has no column(s) {', '.join(missing)}")
        has_long_view = "long_view" in header
        cols = base_cols + ["is_click"] + extra + (["long_view"] if has_long_view else [])
        for _, t in DataFile(log, column_types=types).batches(cols):
            n_in = t.num_rows
            keep = pc.is_in(t.column("tab"), pa.array(tabs, pa.int64()))
            t = t.filter(keep)
            dropped_tab += n_in - t.num_rows
            if not has_long_view:
                lv = pc.cast(pc.greater_equal(t.column("play_time_ms"), t.column("duration_ms")), pa.int8())
                t = t.append_column("long_view", lv)
            out = {c: t.column(c) for c in ["user_id", "video_id", "date", "tab", "duration_ms", *labels]}
            out.update(user_lookup.take(t.column("user_id"), user_cols))
            out.update(video_lookup.take(t.column("video_id"), video_cols))
            table = pa.table(out)
            # Rows are numbered over all logs read (before the tab filter), so the split of a row
            # does not depend on the tabs chosen.
            kept = np.flatnonzero(keep.to_numpy(zero_copy_only=False))
            writer.write_assigned(table, hash_split(row, n_in, fractions, options["seed"])[kept])
            row += n_in
    writer.notes.update(rows_dropped_other_tabs=dropped_tab, variant=v, logs=[p.name for p in logs])

    log1p = [c for c in USER_NUMERIC if c in user_cols] + ["duration_ms"]
    spec = {
        "name": f"kuairand-{v}",
        "scenario": {"column": "tab", "mapping": {t: f"tab{t}" for t in tabs}},
        "tasks": [{"name": t, "column": t} for t in labels],
        "categorical": ["user_id", "video_id"] + [c for c in USER_CATEGORICAL if c in user_cols]
        + [c for c in VIDEO_CATEGORICAL + ["tag"] if c in video_cols],
        "numeric": [{"column": c, "transform": "log1p"} for c in log1p]
        + [{"column": c, "transform": "standardize"} for c in VIDEO_NUMERIC if c in video_cols],
        "user": "user_id",
        "prior_features": ["user_id"],
        "scenario_as_feature": True,
        "min_count": options["min_count"],
    }
    return spec, logs + [side["users"], side["videos"]]


def _int_list(value: Any, option: str) -> list[int]:
    items = value.split(",") if isinstance(value, str) else (value if isinstance(value, (list, tuple)) else [value])
    try:
        out = [int(str(x).strip()) for x in items]
    except ValueError:
        raise ConfigError(f"kuairand: option {option} must be a list of integers, got {value!r}") from None
    if not out:
        raise ConfigError(f"kuairand: option {option} is empty")
    return out


RECIPE = Recipe(
    name="kuairand",
    title="KuaiRand-Pure/1K: scenarios = tabs 0/1/4, is_click and long_view (+ optional extra labels), random 80/10/10",
    expected=EXPECTED,
    build=build,
    options={"variant": ("auto", "pure, 1k, or auto (whichever user_features file is present)"),
             "logs": ("all", "which logs to read: all, standard or random"),
             "tabs": ("0,1,4", "tabs kept as scenarios"),
             "extra_tasks": ("", "extra log labels as tasks, e.g. is_like,is_follow"),
             "min_count": (2, "categories seen fewer times in train map to unknown (AutoIFS: 2)"),
             "seed": (2021, "seed of the random split (AutoIFS uses 2021)"),
             "fractions": ([0.8, 0.1, 0.1], "train/val/test fractions")},
    source="https://kuairand.com (KuaiRand-Pure / KuaiRand-1K, CC BY-SA 4.0)",
)
