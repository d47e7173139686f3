"""MovieLens-1M in the multi-scenario framing of Scenario-Wise-Rec, M3oE and AutoIFS.

Raw files (GroupLens ``ml-1m.zip``; ``::``-separated, Latin-1; MovieLens may not be redistributed,
so the user downloads it): ``ratings.dat`` (UserID::MovieID::Rating::Timestamp), ``users.dat``
(UserID::Gender::Age::Occupation::Zip-code), ``movies.dat`` (MovieID::Title::Genres).

Framing (AutoIFS ``datatransform/``, models.md §4.5; the age split of SWR and M3oE, landscape §5):

- one row per rating, joined with the user's profile, the movie's first genre and all its genres
  (``genres``, a list: a ``multi_categorical`` feature pooled by mean);
- scenarios = age groups {1, 18} → ``under_25``, {25} → ``25_34``, {35, 45, 50, 56} → ``35_plus``;
  the scenario indicator is also an input field (``scenario_as_feature``);
- tasks ``click`` = rating > 3 and ``like`` = rating > 4 (so like ⊂ click);
- fields: user_id, movie_id, gender, age, occupation, zip, first genre (+ the scenario field);
  no minimum-frequency filter;
- option ``history`` (default 0: none): the spec also builds each rating's history from the log,
  the user's ``history`` most recent ratings strictly before it (movie and first genre), pooled by
  target attention on the rated movie (AEM²TL feeds its 30 most recent behaviours);
- a seeded random 80/10/10 split (seed 2021 as in AutoIFS), fixed once here.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from msmtrec.data.io import RandomSplit
from msmtrec.data.recipes.base import Lookup, Recipe, SplitWriter, check_fractions, require_files
from msmtrec.errors import ConfigError, DataError

AGE_GROUPS = {1: "under_25", 18: "under_25", 25: "25_34", 35: "35_plus", 45: "35_plus", 50: "35_plus",
              56: "35_plus"}
EXPECTED = "ratings.dat, users.dat and movies.dat from ml-1m.zip (https://grouplens.org/datasets/movielens/1m/)"


def read_dat(path: Path, names: list[str], types: dict[str, pa.DataType]) -> pa.Table:
    """A ``::``-separated Latin-1 MovieLens file as a table (titles may hold ``:`` and ``,``, so
    the two-character separator becomes the unit separator \\x1f before parsing, no quoting)."""
    text = path.read_bytes().decode("latin-1").replace("::", "\x1f")
    try:
        return pacsv.read_csv(io.BytesIO(text.encode("utf-8")),
                              read_options=pacsv.ReadOptions(column_names=names),
                              parse_options=pacsv.ParseOptions(delimiter="\x1f", quote_char=False),
                              convert_options=pacsv.ConvertOptions(column_types=types))
    except pa.ArrowInvalid as exc:
        raise DataError(f"ml-1m: cannot parse {path.name} as {'::'.join(names)}: {str(exc).splitlines()[0]}") from None


def build(raw: Path, writer: SplitWriter, options: dict[str, Any]) -> tuple[dict[str, Any], list[Path]]:
    files = require_files("ml-1m", raw, {"ratings": ["ratings.dat"], "users": ["users.dat"],
                                         "movies": ["movies.dat"]}, EXPECTED)
    fractions = check_fractions(options["fractions"], 3, "ml-1m option fractions")
    history = options["history"]
    if history < 0:  # an integer: resolve_options typed it as its default
        raise ConfigError(f"ml-1m option history must be a number of ratings >= 0, got {history!r}")
    ratings = read_dat(files["ratings"], ["user_id", "movie_id", "rating", "timestamp"],
                       {"user_id": pa.int64(), "movie_id": pa.int64(), "rating": pa.int8(), "timestamp": pa.int64()})
    users = read_dat(files["users"], ["user_id", "gender", "age", "occupation", "zip"],
                     {"user_id": pa.int64(), "gender": pa.string(), "age": pa.int64(), "occupation": pa.int64(),
                      "zip": pa.string()})
    movies = read_dat(files["movies"], ["movie_id", "title", "genres"],
                      {"movie_id": pa.int64(), "title": pa.string(), "genres": pa.string()})
    bad_age = sorted(set(pc.unique(users.column("age")).to_pylist()) - set(AGE_GROUPS))
    if bad_age:
        raise DataError(f"ml-1m: users.dat has age code(s) {bad_age}; expected {sorted(AGE_GROUPS)}")
    genres = pc.split_pattern(movies.column("genres"), "|")
    movies = movies.append_column("genre", pc.list_element(genres, 0)).set_column(2, "genres", genres)
    u = Lookup(users, "user_id", "ml-1m: users.dat").take(ratings.column("user_id"),
                                                          ["gender", "age", "occupation", "zip"])
    m = Lookup(movies, "movie_id", "ml-1m: movies.dat").take(ratings.column("movie_id"), ["genre", "genres"])
    if u["age"].null_count:
        raise DataError(f"ml-1m: {u['age'].null_count} rating(s) in ratings.dat have a user_id missing from users.dat")
    rating = ratings.column("rating")
    table = pa.table({
        "user_id": ratings.column("user_id"), "movie_id": ratings.column("movie_id"),
        "gender": u["gender"], "age": u["age"], "occupation": u["occupation"], "zip": u["zip"], "genre": m["genre"],
        "genres": m["genres"],
        "rating": rating, "timestamp": ratings.column("timestamp"),
        "click": pc.cast(pc.greater(rating, 3), pa.int8()), "like": pc.cast(pc.greater(rating, 4), pa.int8()),
    })
    writer.track(labels=["click", "like"], scenario="age")
    writer.write_assigned(table, RandomSplit(table.num_rows, fractions, options["seed"]).parts(0, table.num_rows))
    spec = {
        "name": "ml-1m",
        "scenario": {"column": "age", "mapping": {k: v for k, v in AGE_GROUPS.items()}},
        "tasks": [{"name": "click", "column": "click"}, {"name": "like", "column": "like"}],
        "categorical": ["user_id", "movie_id", "gender", "age", "occupation", "zip", "genre"],
        "numeric": [],
        "user": "user_id",
        "prior_features": ["user_id"],
        "scenario_as_feature": True,
        "min_count": 1,
        "multi_categorical": {"genres": {"column": "genres", "max_len": 6, "pooling": "mean"}},
    }
    if history:
        spec["sequences"] = {"history": {"user": "user_id", "item": "movie_id", "time": "timestamp", "max_len": history,
                                         "side": ["genre"], "pooling": "attention"}}
    return spec, [files["ratings"], files["users"], files["movies"]]


RECIPE = Recipe(
    name="ml-1m",
    title="MovieLens-1M: 3 age-group scenarios, click (rating > 3) and like (rating > 4), random 80/10/10",
    expected=EXPECTED,
    build=build,
    options={"seed": (2021, "seed of the random split (AutoIFS uses 2021)"),
             "fractions": ([0.8, 0.1, 0.1], "train/val/test fractions"),
             "history": (0, "build each rating's history of the user's N most recent earlier ratings (0: none)")},
    source="https://grouplens.org/datasets/movielens/1m/",
)
