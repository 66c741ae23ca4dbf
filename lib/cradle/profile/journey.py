"""Journey stage (education -> trial -> new_customer -> loyal, or lost) and member tier.

    formula orders (one_id, order_id, order_date, is_own) + trials (one_id, event_date)
        -> journey_stage per one_id on the run date

Rules (``journey`` in conf/profile.yaml): a sample or trial pack makes a trial; the first
paid own-brand formula order a new customer; ``loyal_min_orders`` own orders a loyal one.
A customer who bought the brand and whose latest formula order is a competitor's, or who
has not bought the brand for ``lost_after_days``, is lost.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cradle.profile.settings import JourneyRules

JOURNEY_STAGES = ("education", "trial", "new_customer", "loyal", "lost")


def journey_stage(
    members: DataFrame, formula_orders: DataFrame, trials: DataFrame, as_of: date, rules: JourneyRules
) -> DataFrame:
    """(one_id, journey_stage, member_tier) for every one_id in ``members``."""
    day = F.lit(as_of)
    orders = formula_orders.where(F.col("order_date") <= day)
    per_member = orders.groupBy("one_id").agg(
        F.countDistinct(F.when(F.col("is_own"), F.col("order_id"))).alias("own_orders"),
        F.max(F.when(F.col("is_own"), F.col("order_date"))).alias("last_own"),
        # The latest formula order; on a day with both, the brand's own counts (bought ours).
        F.max_by("is_own", F.struct("order_date", "is_own")).alias("last_is_own"),
    )
    tried = (
        trials.where(F.col("event_date") <= day).select("one_id").distinct().withColumn("tried", F.lit(True))
    )
    state = (
        members.select("one_id")
        .join(per_member, on="one_id", how="left")
        .join(tried, on="one_id", how="left")
    )
    own = F.coalesce(F.col("own_orders"), F.lit(0))
    lost = (own > 0) & (~F.col("last_is_own") | (F.datediff(day, F.col("last_own")) >= rules.lost_after_days))
    stage = (
        F.when(lost, F.lit("lost"))
        .when(own >= rules.loyal_min_orders, F.lit("loyal"))
        .when(own == 1, F.lit("new_customer"))
        .when(F.col("tried").isNotNull(), F.lit("trial"))
        .otherwise(F.lit("education"))
    )
    tiers = F.create_map(*[F.lit(x) for kv in rules.member_tier.items() for x in kv])
    return state.select("one_id", stage.alias("journey_stage")).withColumn(
        "member_tier", tiers[F.col("journey_stage")]
    )
