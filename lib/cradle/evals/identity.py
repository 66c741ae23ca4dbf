"""OneID against the generator's ground truth: ``cradle eval identity --json``.

Every current identity record (``cradle_gold.identity_records``) is matched to
``<landing_root>/_truth/record_person.parquet`` by lineage (``_file``, ``_line`` = truth
``file``, ``line``). A record whose truth names no person (a test account, a store's own
data) is a true entity of its own. All figures count **every** record; nothing is left out.

* Pairwise precision, recall and F1 over record pairs, from the contingency table of
  (one_id, true entity) counts: a cluster of n records holds n(n-1)/2 pairs, so no pair
  is ever enumerated. Pairwise figures weigh heavy users (a person with 100 records holds
  4,950 pairs), so beside them:
* B-cubed precision and recall (per record: the share of its cluster that is its person,
  the share of its person that is in its cluster; averaged over records), and the share of
  true people held in exactly one one_id.
* Wrong merges involving unattributable records (no true person, or no identifier of
  their person: a walk-in sale under the store's phone) reported on their own, with the
  precision over attributable records only beside the all-records figure.
* The ceiling: ideal identifier linking (records joined through every linking value whose
  records all belong to one true entity, and nothing else); recall is also given as a share
  of the ceiling's recall.
* A naive baseline: exact identifier linking (every record joined through every value of
  a linking type, no guard), with the same figures.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from cradle.catalog import IDENTITY_GRAPH_STATS, IDENTITY_MAP, IDENTITY_RECORDS
from cradle.config import EnvConfig
from cradle.identity.graph import source_key
from cradle.identity.settings import load_identity
from cradle.lake import Lake

TARGETS = {"precision": 0.995, "recall_of_ceiling": 0.97, "largest_ratio": 2.0}


def pairs(n: F.Column) -> F.Column:
    return n * (n - 1) / 2


def labelled_records(lake: Lake, truth: DataFrame) -> DataFrame:
    """(source, source_key, record_id, one_id, person_id) for every current silver record."""
    from cradle.catalog import silver_tables
    from cradle.sources import load_sources

    tables = silver_tables(load_sources().sources)
    parts = []
    for name in load_identity().tables():
        table = tables[name]
        parts.append(
            lake.read(table).select(
                F.lit(name).alias("source"), source_key(table.keys).alias("source_key"), "_file", "_line"
            )
        )
    silver = parts[0]
    for part in parts[1:]:
        silver = silver.unionByName(part)
    current = (
        lake.read(IDENTITY_MAP).where(F.col("valid_to").isNull()).select("source", "source_key", "one_id")
    )
    anonymous = F.col("anonymous") if "anonymous" in truth.columns else F.lit(False)
    truth = truth.select(
        "source",
        F.col("file").alias("_file"),
        F.col("line").cast("int").alias("_line"),
        "person_id",
        anonymous.alias("anonymous"),
    ).dropDuplicates(["source", "_file", "_line"])
    return silver.join(current, on=["source", "source_key"], how="left").join(
        truth, on=["source", "_file", "_line"], how="left"
    )


def truth_entity() -> F.Column:
    """The true entity of a record: its person, else the record itself."""
    return F.coalesce(F.col("person_id"), F.concat(F.lit("record:"), F.col("record_id").cast("string")))


def figures(labelled: DataFrame) -> dict[str, Any]:
    """Cluster quality of ``labelled`` (record_id, one_id, person_id, unattributable).

    ``one_id`` is the predicted cluster, ``person_id`` the true person (null: the record
    is its own entity). With no predicted pair, pairwise precision is 1.0 and recall 0.0:
    abstaining scores an F1 of 0.
    """
    rows = labelled.select(
        "record_id", "one_id", "person_id", truth_entity().alias("entity"), "unattributable"
    )
    cells = rows.groupBy("one_id", "entity").agg(F.count("*").cast("double").alias("n")).cache()
    predicted = cells.groupBy("one_id").agg(F.sum("n").alias("size"), F.count("*").alias("entities"))
    actual = cells.groupBy("entity").agg(F.sum("n").alias("size"), F.count("*").alias("clusters"))
    joined = cells.join(predicted.select("one_id", F.col("size").alias("p")), "one_id").join(
        actual.select("entity", F.col("size").alias("t")), "entity"
    )
    sums = joined.agg(
        F.sum("n").alias("records"),
        F.sum(pairs(F.col("n"))).alias("tp"),
        F.sum(F.col("n") * F.col("n") / F.col("p")).alias("b3p"),
        F.sum(F.col("n") * F.col("n") / F.col("t")).alias("b3r"),
    ).first()
    pred = predicted.agg(
        F.sum(pairs(F.col("size"))).alias("pairs"),
        F.count("*").alias("clusters"),
        F.max("size").alias("largest"),
        F.count(F.when(F.col("entities") > 1, 1)).alias("merged"),
    ).first()
    true = actual.agg(F.sum(pairs(F.col("size"))).alias("pairs"), F.max("size").alias("largest")).first()
    people = (
        rows.where(F.col("person_id").isNotNull())
        .groupBy("person_id")
        .agg(F.countDistinct("one_id").alias("ids"))
        .agg(F.count("*").alias("people"), F.count(F.when(F.col("ids") == 1, 1)).alias("whole"))
        .first()
    )
    n = float(sums["records"] or 0.0)
    tp, pred_pairs, true_pairs = (
        float(sums["tp"] or 0.0),
        float(pred["pairs"] or 0.0),
        float(true["pairs"] or 0.0),
    )
    precision = tp / pred_pairs if pred_pairs else 1.0
    recall = tp / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    cells.unpersist()
    return {
        "precision": round(precision, 6),
        "recall": round(recall, 6),
        "f1": round(f1, 6),
        "bcubed_precision": round(float(sums["b3p"] or 0.0) / n, 6) if n else 1.0,
        "bcubed_recall": round(float(sums["b3r"] or 0.0) / n, 6) if n else 1.0,
        "people_in_one_one_id": round(people["whole"] / people["people"], 6) if people["people"] else 1.0,
        "records": int(n),
        "people": int(people["people"]),
        "predicted_clusters": int(pred["clusters"] or 0),
        "clusters_wrongly_merged": int(pred["merged"] or 0),
        "true_pairs": int(true_pairs),
        "predicted_pairs": int(pred_pairs),
        "wrong_pairs": int(pred_pairs - tp),
        "largest_predicted": int(pred["largest"] or 0),
        "largest_true": int(true["largest"] or 0),
        "largest_ratio": round(float(pred["largest"] or 0) / max(float(true["largest"] or 0), 1.0), 3),
    }


def unattributable_merges(labelled: DataFrame, overall: dict[str, Any]) -> dict[str, Any]:
    """Wrong merges that involve records no identifier can attribute, on their own."""
    attributable = figures(labelled.where(~F.col("unattributable")))
    mixed = (
        labelled.select("one_id", truth_entity().alias("entity"), "unattributable")
        .groupBy("one_id")
        .agg(
            F.countDistinct("entity").alias("entities"), F.max(F.col("unattributable").cast("int")).alias("u")
        )
        .where((F.col("entities") > 1) & (F.col("u") == 1))
        .count()
    )
    return {
        "records": labelled.where(F.col("unattributable")).count(),
        "wrong_pairs": overall["wrong_pairs"] - attributable["wrong_pairs"],
        "clusters": mixed,
        "precision_attributable_only": attributable["precision"],
    }


def stray_by_source(labelled: DataFrame) -> dict[str, dict[str, int]]:
    """Per source: records not in their person's main cluster (where recall is lost)."""
    from pyspark.sql import Window

    cells = labelled.groupBy("person_id", "one_id").agg(F.count("*").alias("n"))
    main = (
        cells.withColumn(
            "r", F.row_number().over(Window.partitionBy("person_id").orderBy(F.desc("n"), "one_id"))
        )
        .where(F.col("r") == 1)
        .select("person_id", F.col("one_id").alias("main_one_id"))
    )
    rows = (
        labelled.join(main, on="person_id", how="inner")
        .groupBy("source")
        .agg(
            F.count("*").alias("records"),
            F.sum(F.when(F.col("one_id") != F.col("main_one_id"), 1).otherwise(0)).alias("outside_main"),
        )
        .collect()
    )
    return {r["source"]: {"records": int(r["records"]), "outside_main": int(r["outside_main"])} for r in rows}


def linking_occurrences(state: DataFrame) -> DataFrame:
    """Occurrences of linking identifier types in the identity state (attributes left out)."""
    from cradle.identity.stage import state_occurrences

    linking = [t for t, spec in load_identity().identifiers.items() if spec.links]
    return state_occurrences(state).where(F.col("id_type").isin(*linking))


def linked_by(labelled: DataFrame, links: DataFrame, engine: str, algorithm: str) -> DataFrame:
    """``labelled`` with one_id replaced by the component its records form through ``links``
    (record_id, value_id); a record without links is its own cluster."""
    from cradle.graph import connected_components
    from cradle.identity.graph import link_edges, record_components

    vertices, edges = link_edges(links)
    labels = connected_components(vertices, edges, engine, algorithm)  # type: ignore[arg-type]
    comp = record_components(links, labels)
    return (
        labelled.drop("one_id")
        .join(comp, on="record_id", how="left")
        .withColumn("one_id", F.coalesce(F.col("component"), F.col("record_id")).cast("string"))
        .drop("component")
    )


def ceiling_and_baseline(
    labelled: DataFrame, state: DataFrame, engine: str, algorithm: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Ideal identifier linking (the ceiling) and exact identifier linking (the baseline).

    The ceiling joins records through every linking value whose records all belong to one
    true entity and through nothing else: no method that links only through shared
    identifiers recalls more. The baseline joins through every linking value, guards off.
    """
    occ = (
        linking_occurrences(state)
        .select("record_id", "value_id")
        .join(labelled.select("record_id", truth_entity().alias("entity")), on="record_id", how="inner")
    )
    pure = occ.groupBy("value_id").agg(F.countDistinct("entity").alias("n")).where(F.col("n") == 1)
    ideal = linked_by(labelled, occ.join(pure, on="value_id", how="left_semi"), engine, algorithm)
    exact = linked_by(labelled, occ, engine, algorithm)
    return figures(ideal), figures(exact)


def churn(lake: Lake, truth_labelled: DataFrame) -> dict[str, Any]:
    """one_id changes between the last two identity run dates, and whether a true merge explains them.

    A change is explained when the record's true person had more than one one_id at the
    earlier run (it was split and is now being joined up).
    """
    dates = [
        r["run_date"]
        for r in lake.read(IDENTITY_GRAPH_STATS)
        .select("run_date")
        .distinct()
        .orderBy(F.desc("run_date"))
        .limit(2)
        .collect()
    ]
    if len(dates) < 2:
        return {"runs_compared": [str(d) for d in dates], "records_compared": 0, "changed": 0}
    last, prev = dates
    history = lake.read(IDENTITY_MAP)
    before = history.where(
        (F.col("valid_from") <= F.lit(prev))
        & (F.col("valid_to").isNull() | (F.col("valid_to") > F.lit(prev)))
    ).select("source", "source_key", F.col("one_id").alias("old_one_id"))
    now = history.where(F.col("valid_to").isNull()).select("source", "source_key", "one_id")
    both = before.join(now, on=["source", "source_key"], how="inner").join(
        truth_labelled.select("source", "source_key", "person_id"), on=["source", "source_key"], how="left"
    )
    split_before = (
        both.where(F.col("person_id").isNotNull())
        .groupBy("person_id")
        .agg(F.countDistinct("old_one_id").alias("ids"))
        .where(F.col("ids") > 1)
        .select("person_id", F.lit(True).alias("was_split"))
    )
    changed = both.where(F.col("old_one_id") != F.col("one_id")).join(
        split_before, on="person_id", how="left"
    )
    counts = changed.agg(
        F.count("*").alias("changed"),
        F.sum(F.when(F.col("was_split"), 1).otherwise(0)).alias("explained"),
    ).first()
    return {
        "runs_compared": [str(prev), str(last)],
        "records_compared": both.count(),
        "changed": int(counts["changed"] or 0),
        "changed_explained_by_true_merge": int(counts["explained"] or 0),
    }


def labelled_state(lake: Lake, truth: DataFrame) -> DataFrame:
    """Every identity record with its one_id, true person and whether it is attributable."""
    anonymous = F.col("anonymous") if "anonymous" in truth.columns else F.lit(False)
    people = truth.select(
        "source",
        F.col("file").alias("_file"),
        F.col("line").cast("int").alias("_line"),
        "person_id",
        anonymous.alias("anonymous"),
    ).dropDuplicates(["source", "_file", "_line"])
    return (
        lake.read(IDENTITY_RECORDS)
        .select(
            "record_id",
            "source",
            "source_key",
            "_file",
            "_line",
            F.col("one_id").cast("string").alias("one_id"),
        )
        .join(people, on=["source", "_file", "_line"], how="left")
        .withColumn(
            "unattributable",
            F.col("person_id").isNull() | F.coalesce(F.col("anonymous"), F.lit(False)),
        )
    )


def measure(spark: SparkSession, lake: Lake, truth_dir: Path, engine: str, algorithm: str) -> dict[str, Any]:
    """All identity figures for the lake against the truth in ``truth_dir``."""
    truth = spark.read.parquet(str(truth_dir / "record_person.parquet"))
    labelled = labelled_state(lake, truth).cache()
    silver = labelled_records(lake, truth)
    result: dict[str, Any] = figures(labelled)
    result["records_without_one_id"] = silver.where(F.col("one_id").isNull()).count()
    result["records_without_true_person"] = labelled.where(F.col("person_id").isNull()).count()
    result["unattributable"] = unattributable_merges(labelled, result)
    ceiling, baseline = ceiling_and_baseline(labelled, lake.read(IDENTITY_RECORDS), engine, algorithm)
    result["ceiling_ideal_identifier_linking"] = ceiling
    result["recall_of_ceiling"] = round(result["recall"] / ceiling["recall"], 6) if ceiling["recall"] else 1.0
    result["baseline_exact_identifier_linking"] = baseline
    result["outside_main_cluster_by_source"] = stray_by_source(labelled)
    result["churn"] = churn(lake, silver)
    result["targets"] = TARGETS
    churn_ok = result["churn"]["changed"] == result["churn"].get("changed_explained_by_true_merge", 0)
    result["passed"] = bool(
        result["precision"] >= TARGETS["precision"]
        and result["recall_of_ceiling"] >= TARGETS["recall_of_ceiling"]
        and result["largest_ratio"] <= TARGETS["largest_ratio"]
        and churn_ok
        and result["records_without_one_id"] == 0
    )
    labelled.unpersist()
    return result


def evaluate(env: EnvConfig, args: argparse.Namespace) -> dict[str, Any]:
    from cradle.graph import resolve_engine
    from cradle.spark import build_spark

    landing = Path(args.data) if getattr(args, "data", None) else Path(env.landing_root)
    spark = build_spark(env, app_name="cradle-eval-identity")
    engine = resolve_engine(spark, env.graph.engine)
    return measure(spark, Lake(spark, env.lake_root), landing / "_truth", engine, env.graph.algorithm)
