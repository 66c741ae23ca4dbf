"""The life-stage engine: the youngest child's stage today, from stated dates or behaviour.

Everything is expressed through one unknown per member, ``B``: the birth date of the
youngest child, counting a pregnancy's (future) birth. The stage on the run date follows
from ``B`` with calendar-month semantics (``add_months``): 0-6m is [0, 6 months), a baby
is 6-12m from the day ``add_months(B, 6)`` on. B in the future is a pregnancy; more than
280 days ahead (or no child expected) is preparing.

Stated dates (CRM birth and due dates, hospital due dates) give ``B`` directly. Where
none exists, each behaviour signal says "``B`` was in this interval at the event date"
(bought stage-2 formula: the child was 6-12 months) and is wrong with a known error
rate. :func:`infer_life_stage` scores every stretch of candidate birth dates by how
many signals it satisfies (a likelihood under independent errors, uniform prior), so
a signal observed two months ago moves forward with the child, and a noisy tag or an
older sibling's formula is outvoted rather than trusted.
"""

from __future__ import annotations

import itertools
import logging
import math
from datetime import date

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cradle.profile.calibration import apply_calibration, fit_isotonic
from cradle.profile.settings import Age, AgeRange, LifeStageRules

log = logging.getLogger(__name__)

EPOCH = date(1970, 1, 1)


def birth_plus(b: Column, age: Age) -> Column:
    """The date on which a child born on ``b`` reaches ``age``."""
    out = F.add_months(b, age.months) if age.months else b
    return F.date_add(out, age.days) if age.days else out


def birth_at(d: Column, age: Age) -> Column:
    """The birth date of a child who is exactly ``age`` old on ``d`` (approximate at month ends)."""
    out = F.add_months(d, -age.months) if age.months else d
    return F.date_sub(out, age.days) if age.days else out


def reached(b: Column, age: Age, as_of: Column) -> Column:
    """True when a child born on ``b`` is at least ``age`` old on ``as_of``."""
    return birth_plus(b, age) <= as_of


def range_label(b: Column, as_of: Column, ranges: list[tuple[str | int, AgeRange]]) -> Column:
    """The label of the first range [from, to) that the age on ``as_of`` falls in, else null."""
    out = None
    for label, r in ranges:
        cond = F.lit(True)
        if r.from_ is not None:
            cond = cond & reached(b, r.from_, as_of)
        if r.to is not None:
            cond = cond & ~reached(b, r.to, as_of)
        out = F.when(cond, F.lit(label)) if out is None else out.when(cond, F.lit(label))
    return F.when(b.isNull(), F.lit(None)).otherwise(out)


def stage_of_birth(b: Column, as_of: Column, rules: LifeStageRules) -> Column:
    """Life stage on ``as_of`` of a youngest child born (or due) on ``b``."""
    return range_label(b, as_of, [(s.name, s) for s in rules.stages]).cast("string")


def formula_stage_of_birth(b: Column, as_of: Column, rules: LifeStageRules) -> Column:
    """Formula stage (0 maternal, 1..4) the member should buy on ``as_of``, null past the last."""
    return range_label(b, as_of, [(s.stage, s) for s in rules.formula_stages]).cast("int")


def next_stage_date(b: Column, as_of: Column, rules: LifeStageRules) -> Column:
    """Date the youngest child enters the next formula stage (null after the last stage)."""
    stages = rules.formula_stages
    out = None
    for current, following in itertools.pairwise(stages):
        cond = F.lit(True)
        if current.from_ is not None:
            cond = cond & reached(b, current.from_, as_of)
        if current.to is not None:
            cond = cond & ~reached(b, current.to, as_of)
        start = birth_plus(b, following.from_) if following.from_ is not None else F.lit(None)
        out = F.when(cond, start) if out is None else out.when(cond, start)
    if out is None:
        return F.lit(None).cast("date")
    # A child not yet in the first stage (preparing) has no known next-stage date.
    return out.cast("date")


# --- stated dates ---------------------------------------------------------------------------


def stated_babies(crm: DataFrame, hospital: DataFrame, as_of: date, rules: LifeStageRules) -> DataFrame:
    """The restricted baby table: (one_id, baby_no, birth_date, due_date, source, as_of).

    ``crm``: one_id, baby_birth_date, due_date (any row of any of the person's member
    records); ``hospital``: one_id, due_date. Each distinct birth date is one baby (twins
    share a date, so they are one row: one baby-stage). The latest due date is a pending
    baby only when it is later than every stated birth by ``new_pregnancy_after_days``;
    otherwise it is the due date of a baby already listed.
    """
    births = (
        crm.where(F.col("baby_birth_date").isNotNull())
        .select("one_id", F.col("baby_birth_date").alias("birth_date"))
        .distinct()
    )
    dues = (
        crm.select("one_id", "due_date", F.lit("crm_members").alias("due_source"))
        .unionByName(hospital.select("one_id", "due_date", F.lit("hospital_signups").alias("due_source")))
        .where(F.col("due_date").isNotNull())
    )
    latest_due = dues.groupBy("one_id").agg(
        F.max_by("due_source", F.struct("due_date", "due_source")).alias("due_source"),
        F.max("due_date").alias("due_date"),
    )
    youngest = births.groupBy("one_id").agg(F.max("birth_date").alias("youngest"))
    gap = rules.stated.new_pregnancy_after_days
    pending = (
        latest_due.join(youngest, on="one_id", how="left")
        .where(F.col("youngest").isNull() | (F.col("due_date") > F.date_add("youngest", gap)))
        .select(
            "one_id",
            F.lit(None).cast("date").alias("birth_date"),
            "due_date",
            F.concat(F.col("due_source"), F.lit(".due_date")).alias("source"),
        )
    )
    babies = births.select(
        "one_id",
        "birth_date",
        F.lit(None).cast("date").alias("due_date"),
        F.lit("crm_members.baby_birth_date").alias("source"),
    ).unionByName(pending)
    order = Window.partitionBy("one_id").orderBy(F.coalesce("birth_date", "due_date"), "source")
    return babies.select(
        "one_id",
        F.row_number().over(order).cast("int").alias("baby_no"),
        "birth_date",
        "due_date",
        "source",
        F.lit(as_of).alias("as_of"),
    )


def stated_life_stage(babies: DataFrame, as_of: date, rules: LifeStageRules) -> DataFrame:
    """(one_id, youngest_birth, life_stage, life_stage_source, life_stage_confidence) from babies.

    The youngest baby (latest birth or pending due date) decides; a due date that has
    passed means the baby is born and the due date stands in for the birth date.
    """
    day = F.lit(as_of)
    conf = rules.stated.confidence
    w = Window.partitionBy("one_id").orderBy(F.coalesce("birth_date", "due_date").desc(), "source")
    youngest = babies.withColumn("_n", F.row_number().over(w)).where(F.col("_n") == 1)
    b = F.coalesce("birth_date", "due_date")
    source = F.when(F.col("birth_date").isNotNull(), F.lit("stated_birth_date")).otherwise(
        F.lit("stated_due_date")
    )
    confidence = (
        F.when(F.col("birth_date").isNotNull(), F.lit(conf["stated_birth_date"]))
        .when(F.col("due_date") > day, F.lit(conf["stated_due_date"]))
        .otherwise(F.lit(conf["stated_due_date_passed"]))
    )
    return youngest.select(
        "one_id",
        b.alias("youngest_birth"),
        stage_of_birth(b, day, rules).alias("life_stage"),
        source.alias("life_stage_source"),
        confidence.cast("double").alias("life_stage_confidence"),
    )


# --- inference from behaviour ---------------------------------------------------------------

SIGNAL_SCHEMA = T.StructType(
    [
        T.StructField("one_id", T.StringType(), False),
        T.StructField("signal", T.StringType(), False),
        T.StructField("cls", T.StringType(), False),
        T.StructField("event_date", T.DateType(), False),
    ]
)


def _day_number(d: Column) -> Column:
    return F.datediff(d, F.lit(EPOCH))


def _spec_rows(rules: LifeStageRules) -> list[tuple]:
    rows = []
    for s in rules.inference.signals:
        for cls, r in s.classes.items():
            f, t = (None if s.youngest_bound_only else r.from_), r.to
            if f is None and t is None:
                continue
            rows.append(
                (
                    s.name,
                    cls,
                    float(s.error),
                    f is None,
                    f.months if f else 0,
                    f.days if f else 0,
                    t is None,
                    t.months if t else 0,
                    t.days if t else 0,
                )
            )
    return rows


SPEC_SCHEMA = T.StructType(
    [
        T.StructField("signal", T.StringType()),
        T.StructField("cls", T.StringType()),
        T.StructField("error", T.DoubleType()),
        T.StructField("from_open", T.BooleanType()),
        T.StructField("from_months", T.IntegerType()),
        T.StructField("from_days", T.IntegerType()),
        T.StructField("to_open", T.BooleanType()),
        T.StructField("to_months", T.IntegerType()),
        T.StructField("to_days", T.IntegerType()),
    ]
)


def signal_intervals(signals: DataFrame, as_of: date, rules: LifeStageRules) -> DataFrame:
    """(one_id, signal, cls, d, error, lo, hi): each signal on day d as an interval [lo, hi) of
    birth-date day numbers; ``error`` is the configured prior error rate.

    Only signals inside the lookback window count; per member, signal and class only the
    first and the last event are kept (they bound the interval; repeating the same page
    view fifty times is one piece of evidence, not fifty).
    """
    inf = rules.inference
    spark = signals.sparkSession
    specs = spark.createDataFrame(_spec_rows(rules), SPEC_SCHEMA)
    day = F.lit(as_of)
    windowed = signals.where(
        (F.col("event_date") <= day) & (F.col("event_date") > F.date_sub(day, inf.lookback_days))
    )
    ends = windowed.groupBy("one_id", "signal", "cls").agg(
        F.min("event_date").alias("first"), F.max("event_date").alias("last")
    )
    events = ends.select(
        "one_id", "signal", "cls", F.explode(F.array_distinct(F.array("first", "last"))).alias("d")
    ).join(F.broadcast(specs), on=["signal", "cls"], how="inner")
    d = F.col("d")
    # age at d in [from, to)  <=>  B in (d - to, d - from]  <=>  [d - to + 1, d - from + 1)
    lo_open = _day_number(birth_at(day, inf.prior_to))
    hi_open = _day_number(birth_at(day, inf.prior_from)) + 1
    to_birth = F.date_sub(F.add_months(d, -F.col("to_months")), F.col("to_days"))
    from_birth = F.date_sub(F.add_months(d, -F.col("from_months")), F.col("from_days"))
    lo = F.when(F.col("to_open"), lo_open).otherwise(_day_number(to_birth) + 1)
    hi = F.when(F.col("from_open"), hi_open).otherwise(_day_number(from_birth) + 1)
    return (
        events.select(
            "one_id",
            "signal",
            "cls",
            "d",
            "error",
            F.greatest(lo, lo_open).alias("lo"),
            F.least(hi, hi_open).alias("hi"),
        )
        .where(F.col("lo") < F.col("hi"))
        .distinct()
    )


def fixed_cuts(as_of: date, rules: LifeStageRules) -> list[Column]:
    """Birth-date day numbers where the prior starts and ends and every stage begins."""
    inf = rules.inference
    day = F.lit(as_of)
    cuts = [_day_number(birth_at(day, inf.prior_to)), _day_number(birth_at(day, inf.prior_from)) + 1]
    return cuts + [_day_number(birth_at(day, s.from_)) + 1 for s in rules.stages if s.from_ is not None]


def stage_prior(stated: DataFrame, as_of: date, rules: LifeStageRules) -> DataFrame:
    """(life_stage, density): how common each stage is per day of birth date, from stated members.

    Empirical Bayes: members with a stated date show how the brand's base spreads over the
    stages (far more 1-2 year-olds than 5-6 year-olds), so an ambiguous signal such as a
    toddler-nutrition article (12-36 months) leans the way the base leans. Counts get
    ``prior.smoothing`` added; preparing, which no stated date can show, gets
    ``prior.preparing_vs_pregnant`` times the pregnant density. Densities are relative.
    """
    p = rules.inference.prior
    spark = stated.sparkSession
    cuts = fixed_cuts(as_of, rules)
    # Consecutive cut points as (p, q) pairs, built inside one row: no window over all rows.
    ordered = F.array_sort(F.array(*cuts))
    pairs = F.transform(
        F.sequence(F.lit(1), F.lit(len(cuts) - 1)),
        lambda i: F.struct(F.element_at(ordered, i).alias("p"), F.element_at(ordered, i + 1).alias("q")),
    )
    points = spark.range(1).select(F.explode(pairs).alias("pq")).select("pq.p", "pq.q")
    widths = (
        points.where(F.col("q").isNotNull() & (F.col("p") >= cuts[0]) & (F.col("q") <= cuts[1]))
        .select(
            stage_of_birth(F.date_add(F.lit(EPOCH), F.col("p").cast("int")), F.lit(as_of), rules).alias(
                "life_stage"
            ),
            (F.col("q") - F.col("p")).alias("width"),
        )
        .groupBy("life_stage")
        .agg(F.sum("width").alias("width"))
    )
    counts = stated.groupBy("life_stage").agg(F.count("*").alias("n"))
    dens = widths.join(counts, on="life_stage", how="left").select(
        "life_stage", ((F.coalesce("n", F.lit(0)) + F.lit(p.smoothing)) / F.col("width")).alias("density")
    )
    pregnant = rules.stage_names[1]
    pregnant_density = dens.where(F.col("life_stage") == pregnant).select(F.col("density").alias("pd"))
    return (
        dens.crossJoin(pregnant_density)
        .select(
            "life_stage",
            F.when(F.col("life_stage") == rules.stage_names[0], F.col("pd") * p.preparing_vs_pregnant)
            .otherwise(F.col("density"))
            .alias("density"),
        )
        .localCheckpoint()
    )


def config_weights(spark: SparkSession, rules: LifeStageRules) -> DataFrame:
    """(signal, cls, w_in, w_out) from the configured error rates alone (no labelled members).

    A signal wrong with probability ``e`` adds log(1 - e) where ``B`` is inside its interval
    and log(e) outside.
    """
    rows = [(r[0], r[1], math.log(1 - r[2]), math.log(r[2])) for r in _spec_rows(rules)]
    return spark.createDataFrame(rows, WEIGHT_SCHEMA)


WEIGHT_SCHEMA = "signal string, cls string, w_in double, w_out double"


def class_intervals(spark: SparkSession, as_of: date, rules: LifeStageRules) -> DataFrame:
    """(signal, cls, lo, hi): every configured class read on ``as_of``."""
    rows = [("", r[0], r[1], as_of) for r in _spec_rows(rules)]
    probe = spark.createDataFrame(rows, SIGNAL_SCHEMA)
    return signal_intervals(probe, as_of, rules).select("signal", "cls", "lo", "hi")


def learn_signal_weights(
    intervals: DataFrame, stated: DataFrame, as_of: date, rules: LifeStageRules
) -> DataFrame:
    """(signal, cls, n, agree, base_rate, w_in, w_out): how far to trust each signal class, learned.

    ``stated``: one_id, youngest_birth of members with a stated date. Among their signals
    of a class, ``agree`` is the share whose interval holds the stated birth date (shrunk
    towards the configured ``1 - error`` with ``inference.learning.prior_weight``
    pseudo-events); ``base_rate`` is the share of stated members whose birth date the
    class's interval holds whatever they did. The signal's Bayes factor for "inside" is
    agree/(1 - agree) over base_rate/(1 - base_rate): a class every member fits (a wide
    toddler window) says little even when it is always right.
    """
    m = rules.inference.learning.prior_weight
    spark = intervals.sparkSession
    births = stated.select("one_id", _day_number(F.col("youngest_birth")).alias("b")).where(
        F.col("b").isNotNull()
    )
    inside = (F.col("lo") <= F.col("b")) & (F.col("b") < F.col("hi"))
    seen = (
        intervals.join(births, on="one_id", how="inner")
        .groupBy("signal", "cls")
        .agg(F.count("*").alias("n"), F.sum(inside.cast("int")).alias("k"))
    )
    total = births.count()
    base = (
        class_intervals(spark, as_of, rules)
        .crossJoin(births.select("b"))
        .groupBy("signal", "cls")
        .agg(F.sum(inside.cast("int")).alias("in_base"))
    )
    specs = spark.createDataFrame(
        [(r[0], r[1], r[2]) for r in _spec_rows(rules)], "signal string, cls string, error double"
    )
    agree = (F.coalesce("k", F.lit(0)) + F.lit(m) * (1 - F.col("error"))) / (
        F.coalesce("n", F.lit(0)) + F.lit(m)
    )
    agree = F.least(F.greatest(agree, F.lit(0.01)), F.lit(0.99))
    base_rate = (F.coalesce("in_base", F.lit(0)) + 1) / F.lit(total + 2)
    return (
        specs.join(seen, on=["signal", "cls"], how="left")
        .join(base, on=["signal", "cls"], how="left")
        .select(
            "signal",
            "cls",
            F.coalesce("n", F.lit(0)).alias("n"),
            agree.alias("agree"),
            base_rate.alias("base_rate"),
        )
        .select(
            "*",
            (F.log("agree") - F.log("base_rate")).alias("w_in"),
            (F.log(1 - F.col("agree")) - F.log(1 - F.col("base_rate"))).alias("w_out"),
        )
        .localCheckpoint()
    )


def posterior(
    intervals: DataFrame,
    weights: DataFrame,
    members: DataFrame,
    as_of: date,
    rules: LifeStageRules,
    prior: DataFrame | None,
) -> DataFrame:
    """(one_id, life_stage, share, b_day) of each member's most likely stage, from her signals.

    Candidate birth dates are cut into stretches where the same signals hold; each stretch
    weighs its width x exp(sum of w_in for intervals holding it, w_out for the others) x the
    prior density of its stage. A member without signals gets the prior alone.
    """
    day = F.lit(as_of)
    spark = intervals.sparkSession
    weighted = intervals.join(
        F.broadcast(weights.select("signal", "cls", "w_in", "w_out")), on=["signal", "cls"], how="inner"
    )
    cuts = fixed_cuts(as_of, rules)
    fixed = spark.range(1).select(F.explode(F.array(*cuts)).alias("p"))
    points = (
        weighted.select("one_id", F.col("lo").alias("p"))
        .unionByName(weighted.select("one_id", F.col("hi").alias("p")))
        .unionByName(members.select("one_id").crossJoin(F.broadcast(fixed)))
        .distinct()
    )
    w = Window.partitionBy("one_id").orderBy("p")
    segments = (
        points.withColumn("q", F.lead("p").over(w))
        .where(F.col("q").isNotNull())
        .where((F.col("p") >= cuts[0]) & (F.col("q") <= cuts[1]))
    )
    inside = (F.col("lo") <= F.col("p")) & (F.col("p") < F.col("hi"))
    scored = (
        segments.join(weighted, on="one_id", how="left")
        .groupBy("one_id", "p", "q")
        .agg(
            F.sum(
                F.when(F.col("lo").isNull(), F.lit(0.0)).when(inside, F.col("w_in")).otherwise(F.col("w_out"))
            ).alias("ll")
        )
    )
    by_member = Window.partitionBy("one_id")
    b_start = F.date_add(F.lit(EPOCH), F.col("p").cast("int"))
    massed = scored.select(
        "one_id",
        "p",
        "q",
        ((F.col("q") - F.col("p")) * F.exp(F.col("ll") - F.max("ll").over(by_member))).alias("mass"),
        stage_of_birth(b_start, day, rules).alias("life_stage"),
    )
    if prior is not None:
        massed = massed.join(F.broadcast(prior), on="life_stage", how="left").withColumn(
            "mass", F.col("mass") * F.coalesce(F.col("density"), F.lit(1.0))
        )
    stages = massed.groupBy("one_id", "life_stage").agg(
        F.sum("mass").alias("mass"),
        (F.sum(F.col("mass") * (F.col("p") + F.col("q") - 1) / 2) / F.sum("mass")).alias("b_mean"),
    )
    order = {name: i for i, name in enumerate(rules.stage_names)}
    stage_order = F.create_map(*[F.lit(x) for kv in order.items() for x in kv])
    best = Window.partitionBy("one_id").orderBy(F.col("mass").desc(), stage_order[F.col("life_stage")])
    return (
        stages.withColumn("share", F.col("mass") / F.sum("mass").over(by_member))
        .withColumn("_n", F.row_number().over(best))
        .where(F.col("_n") == 1)
        .select("one_id", "life_stage", "share", F.round("b_mean").cast("long").alias("b_day"))
    )


def learn_calibration(raw: DataFrame, stated: DataFrame, rules: LifeStageRules) -> list[tuple[float, float]]:
    """(upper edge, confidence) per raw-share bin: how often the inferred stage of a member
    with a stated date equals her stated stage (isotonic over ``learning.calibration_bins``
    equal-width bins). Collects one row per bin."""
    bins = rules.inference.learning.calibration_bins
    labelled = raw.join(
        stated.select("one_id", F.col("life_stage").alias("stated_stage")), on="one_id", how="inner"
    )
    b = F.least(F.floor(F.col("share") * bins), F.lit(bins - 1)).cast("int")
    rows = (
        labelled.groupBy(b.alias("bin"))
        .agg(
            F.count("*").alias("n"),
            F.sum((F.col("life_stage") == F.col("stated_stage")).cast("int")).alias("ok"),
        )
        .collect()
    )
    table = fit_isotonic([((r["bin"] + 1) / bins, int(r["n"]), int(r["ok"])) for r in rows])
    log.info("life-stage calibration (raw share upper edge -> confidence): %s", table)
    return table


def infer_life_stage(
    signals: DataFrame,
    as_of: date,
    rules: LifeStageRules,
    prior: DataFrame | None = None,
    stated: DataFrame | None = None,
    members: DataFrame | None = None,
) -> DataFrame:
    """(one_id, youngest_birth, life_stage, life_stage_source, life_stage_confidence) from behaviour.

    ``signals``: one_id, signal (a name in ``life_stage.inference.signals``), cls (its
    class, e.g. "2" for stage-2 formula), event_date. ``prior`` (life_stage, density):
    relative prior density of the birth date per stage (see :func:`stage_prior`); none is
    uniform. ``stated`` (one_id, youngest_birth, life_stage of members with a stated date):
    when given, each signal class's weight is learned from them and the confidence is
    calibrated on them (their behaviour scored as if no date were stated); otherwise the
    configured error rates are used and the confidence is the raw posterior share.
    ``members`` (one_id): members to score even without signals (they get the prior's
    most likely stage, source ``prior``). Members under ``min_confidence`` get no row.
    """
    inf = rules.inference
    intervals = signal_intervals(signals, as_of, rules).localCheckpoint()
    if stated is not None:
        weights = learn_signal_weights(intervals, stated, as_of, rules)
    else:
        weights = config_weights(signals.sparkSession, rules)
    scored = intervals.select("one_id").distinct()
    if members is not None:
        scored = scored.unionByName(members.select("one_id")).distinct()
    raw = posterior(intervals, weights, scored, as_of, rules, prior).localCheckpoint()
    confidence = F.col("share")
    if stated is not None:
        confidence = apply_calibration(F.col("share"), learn_calibration(raw, stated, rules))
    winners = raw.select(
        "one_id",
        "life_stage",
        F.date_add(F.lit(EPOCH), F.col("b_day").cast("int")).alias("youngest_birth"),
        F.round(confidence, 4).alias("life_stage_confidence"),
        "b_day",
    ).where(F.col("life_stage_confidence") >= inf.min_confidence)
    # The source: the most telling signal that agrees with the estimate.
    # Bound-only readings (formula for "at most this old") explain little: last resort.
    rank = {s.name: i + (1000 if s.youngest_bound_only else 0) for i, s in enumerate(rules.inference.signals)}
    rank_map = F.create_map(*[F.lit(x) for kv in rank.items() for x in kv])
    agree = (
        winners.join(
            intervals.join(F.broadcast(weights), on=["signal", "cls"], how="inner"), on="one_id", how="inner"
        )
        .where((F.col("lo") <= F.col("b_day")) & (F.col("b_day") < F.col("hi")))
        .groupBy("one_id")
        .agg(
            F.min_by(
                "signal",
                F.struct(
                    rank_map[F.col("signal")] >= 1000,
                    F.col("w_out") - F.col("w_in"),
                    rank_map[F.col("signal")],
                ),
            ).alias("life_stage_source")
        )
    )
    return winners.join(agree, on="one_id", how="left").select(
        "one_id",
        "youngest_birth",
        "life_stage",
        F.coalesce("life_stage_source", F.lit("prior")).alias("life_stage_source"),
        F.col("life_stage_confidence").cast("double"),
    )


def combine_life_stage(stated: DataFrame, inferred: DataFrame, rules: LifeStageRules) -> DataFrame:
    """Stated wins; behaviour overrides it only with confident evidence of a younger child.

    A stated birth date goes stale when a second child arrives or a new pregnancy starts
    and the member does not tell the CRM; behaviour then points at a later ``B``. An
    inferred ``B`` earlier than the stated one never wins (the stated date is better).
    Adds ``has_stated_date``.
    """
    order = {name: i for i, name in enumerate(rules.stage_names)}
    stage_order = F.create_map(*[F.lit(x) for kv in order.items() for x in kv])
    s = stated.select([F.col(c).alias(f"s_{c}") if c != "one_id" else F.col(c) for c in stated.columns])
    i = inferred.select([F.col(c).alias(f"i_{c}") if c != "one_id" else F.col(c) for c in inferred.columns])
    both = s.join(i, on="one_id", how="full")
    younger = (stage_order[F.col("i_life_stage")] < stage_order[F.col("s_life_stage")]) & (
        F.col("i_life_stage") != F.lit(rules.stage_names[0])
    )
    # A different, younger child: born well after the stated one (not the stated child
    # read a few weeks off at a stage boundary).
    later = F.col("i_youngest_birth") > F.date_add(
        F.col("s_youngest_birth"), rules.stated.override_min_gap_days
    )
    use_inferred = F.col("s_life_stage").isNull() | (
        younger & later & (F.col("i_life_stage_confidence") >= rules.stated.override_min_confidence)
    )
    pick = {
        c: F.when(use_inferred, F.col(f"i_{c}")).otherwise(F.col(f"s_{c}"))
        for c in ("youngest_birth", "life_stage", "life_stage_source", "life_stage_confidence")
    }
    return both.select(
        "one_id",
        *[v.alias(k) for k, v in pick.items()],
        F.col("s_life_stage").isNotNull().alias("has_stated_date"),
    )


def with_formula_stage(profile: DataFrame, as_of: date, rules: LifeStageRules) -> DataFrame:
    """Adds formula_stage, next_stage_date, days_to_next_stage from ``youngest_birth``.

    Preparing members have no formula stage; nor does an unknown stage.
    """
    day = F.lit(as_of)
    b = F.when(F.col("life_stage") != F.lit(rules.stage_names[0]), F.col("youngest_birth"))
    nxt = next_stage_date(b, day, rules)
    return (
        profile.withColumn("formula_stage", formula_stage_of_birth(b, day, rules))
        .withColumn("next_stage_date", nxt)
        .withColumn("days_to_next_stage", F.datediff(F.col("next_stage_date"), day))
    )
