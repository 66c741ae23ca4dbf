"""OneID against the generator's ground truth: ``cradle eval identity --json``.

Silver rows are matched to ``<landing_root>/_truth/record_person.parquet`` by lineage
(``_file``, ``_line`` = truth ``file``, ``line``) and to their one_id through
``cradle_gold.identity_map`` (source, source_key). Pairwise precision and recall over
record pairs come from the contingency table of (one_id, person_id) counts: a cluster of
n records holds n(n-1)/2 pairs, so no pair is ever enumerated.

Records whose truth has no person (test accounts, store placeholders) are left out of
the pairwise figures and counted separately, and so are anonymous records: the truth
marks records that carry no identifier of their person (a walk-in sale with no card and
no phone of her own, a Wi-Fi visit under a random MAC, an ad event whose only device id
is all zeros). No identity method can attribute those; ``including_anonymous`` gives the
figures with them counted as unlinked.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cradle.catalog import IDENTITY_GRAPH_STATS, IDENTITY_MAP, IDENTITY_RECORDS
from cradle.config import EnvConfig
from cradle.identity.graph import source_key
from cradle.identity.settings import load_identity
from cradle.lake import Lake

TARGETS = {"precision": 0.995, "recall": 0.98, "largest_ratio": 2.0}


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


def pairwise(labelled: DataFrame) -> dict[str, Any]:
    cells = labelled.groupBy("one_id", "person_id").agg(F.count("*").cast("double").alias("n")).cache()
    tp = cells.agg(F.sum(pairs(F.col("n")))).first()[0] or 0.0
    predicted = cells.groupBy("one_id").agg(F.sum("n").alias("n")).cache()
    actual = cells.groupBy("person_id").agg(F.sum("n").alias("n")).cache()
    pred_pairs = predicted.agg(F.sum(pairs(F.col("n")))).first()[0] or 0.0
    true_pairs = actual.agg(F.sum(pairs(F.col("n")))).first()[0] or 0.0
    precision = tp / pred_pairs if pred_pairs else 1.0
    recall = tp / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    people_per_cluster = cells.groupBy("one_id").agg(F.count("*").alias("people"))
    clusters_per_person = cells.groupBy("person_id").agg(F.count("*").alias("clusters"))
    # The records of a person outside the cluster holding most of them, per source.
    return {
        "precision": round(precision, 6),
        "recall": round(recall, 6),
        "f1": round(f1, 6),
        "true_pairs": int(true_pairs),
        "predicted_pairs": int(pred_pairs),
        "true_positive_pairs": int(tp),
        "people": actual.count(),
        "predicted_clusters": predicted.count(),
        "true_people_split": clusters_per_person.where(F.col("clusters") > 1).count(),
        "clusters_wrongly_merged": people_per_cluster.where(F.col("people") > 1).count(),
        "people_in_wrong_merges": people_per_cluster.where(F.col("people") > 1)
        .agg(F.coalesce(F.sum("people"), F.lit(0)))
        .first()[0],
        "largest_predicted": int(predicted.agg(F.max("n")).first()[0] or 0),
        "largest_true": int(actual.agg(F.max("n")).first()[0] or 0),
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


def recall_ceiling(lake: Lake, evaluated: DataFrame, engine: str, algorithm: str) -> dict[str, Any]:
    """Recall of ideal identifier linking: records joined through every value whose records
    all belong to one true person, and through nothing else.

    No deterministic method that links only through shared identifiers can reach higher
    recall; the gap between this and the measured recall is what the guards cost, the rest
    is people whose records share no identifier (a WeChat follower who never bound her phone).
    """
    from cradle.graph import connected_components
    from cradle.identity.graph import link_edges, record_components
    from cradle.identity.stage import state_occurrences

    people = evaluated.select("source", "source_key", "person_id")
    state = lake.read(IDENTITY_RECORDS).join(people, on=["source", "source_key"], how="inner")
    occ = state_occurrences(state.drop("person_id")).join(
        state.select("record_id", "person_id"), on="record_id", how="inner"
    )
    pure = (
        occ.groupBy("value_id").agg(F.countDistinct("person_id").alias("people")).where(F.col("people") == 1)
    )
    links = occ.join(pure, on="value_id", how="left_semi")
    vertices, edges = link_edges(links)
    labels = connected_components(vertices, edges, engine, algorithm)  # type: ignore[arg-type]
    comp = record_components(links, labels)
    ideal = state.select("record_id", "person_id").join(comp, on="record_id", how="left")
    ideal = ideal.select("person_id", F.coalesce(F.col("component"), F.col("record_id")).alias("one_id"))
    figures = pairwise(ideal)
    return {"recall": figures["recall"], "true_people_split": figures["true_people_split"]}


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


def evaluate(env: EnvConfig, args: argparse.Namespace) -> dict[str, Any]:
    from cradle.spark import build_spark

    landing = Path(args.data) if getattr(args, "data", None) else Path(env.landing_root)
    spark = build_spark(env, app_name="cradle-eval-identity")
    lake = Lake(spark, env.lake_root)
    truth = spark.read.parquet(str(landing / "_truth" / "record_person.parquet"))
    labelled = labelled_records(lake, truth).cache()
    unmatched = labelled.where(F.col("one_id").isNull()).count()
    no_person = labelled.where(F.col("person_id").isNull() & F.col("one_id").isNotNull()).count()
    attributable = labelled.where(F.col("person_id").isNotNull() & F.col("one_id").isNotNull())
    evaluated = attributable.where(~F.col("anonymous"))
    result: dict[str, Any] = pairwise(evaluated)
    result["records_evaluated"] = evaluated.count()
    result["anonymous_records"] = attributable.where(F.col("anonymous")).count()
    with_anonymous = pairwise(attributable)
    result["including_anonymous"] = {k: with_anonymous[k] for k in ("precision", "recall", "f1")}
    result["records_without_one_id"] = unmatched
    result["records_without_true_person"] = no_person
    result["unlinked_singletons"] = lake.read(IDENTITY_RECORDS).where(F.size("identifiers") == 0).count()
    result["outside_main_cluster_by_source"] = stray_by_source(evaluated)
    result["churn"] = churn(lake, labelled)
    from cradle.graph import resolve_engine

    result["ideal_identifier_linking"] = recall_ceiling(
        lake, evaluated, resolve_engine(spark, env.graph.engine), env.graph.algorithm
    )
    result["largest_ratio"] = round(result["largest_predicted"] / max(result["largest_true"], 1), 3)
    result["targets"] = TARGETS
    result["passed"] = bool(
        result["precision"] >= TARGETS["precision"]
        and result["recall"] >= TARGETS["recall"]
        and result["largest_ratio"] <= TARGETS["largest_ratio"]
        and unmatched == 0
    )
    return result
