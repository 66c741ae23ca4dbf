"""User SQL is read-only by construction (cradle.sqlguard): hostile tag rules, checks,
where clauses and mappings are refused with a one-line message naming the file, the rule
and the problem, before Spark runs anything, and no table of a real Delta lake changes."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from cradle import sqlguard
from cradle.catalog import MEMBER_BABIES, MEMBER_PROFILE, MEMBER_TAGS, Table, silver_tables
from cradle.config import ConfigError
from cradle.identity.graph import identifier_occurrences
from cradle.identity.settings import IdentityConfig, load_identity
from cradle.ingest.validate import check_rules
from cradle.lake import Lake
from cradle.profile.rfm import feed_orders
from cradle.profile.settings import OrdersFeed, load_profile
from cradle.sources import load_sources
from cradle.tags.engine import compile_rules, render_rule, rule_tags
from cradle.tags.settings import TagsConfig, load_tags
from cradle.tags.stage import protected_columns

RUN = date(2026, 3, 31)
ORIGIN = "tags.yaml: tag 't'"
READABLE = {
    "cradle_silver.pos_orders": ("mobile_token", "mobile_md5_token", "mobile_enc"),
    "cradle_gold.member_profile": (),
}


def refusal(spark: SparkSession, sql: str) -> str:
    with pytest.raises(sqlguard.SqlRefused) as err:
        sqlguard.check_query(spark, sql, ORIGIN, READABLE)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{ORIGIN}: ")
    return message


# --- statements that are not a single query ------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "found"),
    [
        ("DELETE FROM CRADLE_SILVER.pos_orders WHERE amount > 0", "DELETE"),
        ("UPDATE cradle_silver.pos_orders SET amount = 0", "UPDATE"),
        ("INSERT INTO cradle_gold.member_tags SELECT * FROM cradle_gold.member_tags", "INSERT"),
        ("INSERT OVERWRITE cradle_gold.member_tags SELECT * FROM cradle_gold.member_tags", "INSERT"),
        (
            "MERGE INTO cradle_silver.pos_orders t USING cradle_silver.pos_orders s "
            "ON t.order_no = s.order_no WHEN MATCHED THEN DELETE",
            "MERGE",
        ),
        ("CALL spark_catalog.system.rollback('cradle_silver.pos_orders', 1)", "CALL"),
        ("SET spark.sql.ansi.enabled = false", "SET"),
        ("RESET", "RESET"),
        ("ADD JAR /tmp/evil.jar", "ADD JAR"),
        ("CACHE TABLE cradle_silver.pos_orders", "CACHE TABLE"),
        ("REFRESH TABLE cradle_silver.pos_orders", "REFRESH TABLE"),
        ("USE cradle_gold", "USE"),
        ("EXECUTE IMMEDIATE 'DELETE FROM cradle_silver.pos_orders'", "EXECUTE IMMEDIATE"),
        ("BEGIN DELETE FROM cradle_silver.pos_orders; END", r"a SQL script \(BEGIN ... END\)"),
        ("SELECT TRANSFORM(order_no) USING 'cat /etc/passwd' FROM cradle_silver.pos_orders", "TRANSFORM"),
        ("SELECT * FROM cradle_silver.pos_orders VERSION AS OF 0", "time travel"),
        ("SELECT * FROM IDENTIFIER('cradle_gold.member_babies')", r"IDENTIFIER\(...\)"),
        ("DROP TABLE cradle_gold.member_babies", "DROP TABLE"),
        ("CREATE TABLE default.stolen AS SELECT * FROM cradle_silver.pos_orders", "CREATE TABLE AS SELECT"),
        ("ALTER TABLE cradle_silver.pos_orders ADD COLUMNS (x INT)", "ALTER TABLE"),
        ("TRUNCATE TABLE cradle_silver.pos_orders", "TRUNCATE TABLE"),
        ("VACUUM cradle_silver.pos_orders RETAIN 0 HOURS", "VACUUM"),
        ("OPTIMIZE cradle_silver.pos_orders", "OPTIMIZE"),
        ("RESTORE TABLE cradle_silver.pos_orders TO VERSION AS OF 0", "RESTORE"),
        ("EXPLAIN SELECT * FROM cradle_silver.pos_orders", "EXPLAIN"),
        ("DECLARE VARIABLE v INT", "DECLARE VARIABLE"),
    ],
)
def test_anything_but_a_single_query_is_refused_by_name(spark, sql, found):
    assert re.search(f"only a single SELECT query is allowed, found {found}", refusal(spark, sql))


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT one_id, 'x' AS value FROM cradle_gold.member_profile; DELETE FROM cradle_silver.pos_orders",
        "SELECT 1; SELECT 2",
        "SELECT 1 ; -- and then\n DROP TABLE cradle_gold.member_babies",
    ],
)
def test_more_than_one_statement_is_refused(spark, sql):
    assert refusal(spark, sql) == f"{ORIGIN}: only one statement (a single SELECT query) is allowed"


# --- tables --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT one_id, CAST(birth_date AS STRING) AS value FROM CRADLE_GOLD.member_babies",
        "SELECT one_id, 'x' AS value FROM cradle_gold.MEMBER_BABIES",
        "SELECT one_id, 'x' AS value FROM `cradle_gold`.`member_babies`",
        "SELECT one_id, 'x' AS value FROM `CRADLE_GOLD` . `Member_Babies` b",
        "SELECT one_id, 'x' AS value FROM spark_catalog.cradle_gold.member_babies",
        "SELECT one_id, 'x' AS value FROM `SPARK_CATALOG`.`cradle_gold`.member_babies",
        "SELECT one_id, 'x' AS value FROM cradle_gold.member_profile "
        "WHERE one_id IN (SELECT one_id FROM Cradle_Gold.Member_Babies)",
        "WITH kids AS (SELECT * FROM cradle_gold.member_babies) SELECT one_id, 'x' AS value FROM kids",
        "SELECT p.one_id, 'x' AS value FROM cradle_gold.member_profile p, "
        "LATERAL (SELECT * FROM cradle_gold.member_babies b WHERE b.one_id = p.one_id)",
        "SELECT one_id, 'x' AS value FROM cradle_gold.member_profile "
        "WHERE EXISTS (SELECT 1 FROM cradle_gold.member_babies)",
    ],
)
def test_restricted_table_is_refused_whatever_its_spelling(spark, sql):
    assert refusal(spark, sql) == (
        f"{ORIGIN}: reads cradle_gold.member_babies, which is restricted (sensitive personal data); "
        "user SQL may not read it"
    )


def test_restricted_table_is_refused_even_when_a_caller_allows_it(spark):
    with pytest.raises(sqlguard.SqlRefused, match=r"cradle_gold\.member_babies, which is restricted"):
        sqlguard.check_query(
            spark, "SELECT * FROM cradle_gold.member_babies", ORIGIN, {"cradle_gold.member_babies": ()}
        )


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT * FROM default.orders_export", "reads default.orders_export, which is outside the lake;"),
        (
            "SELECT * FROM delta.`/lake/gold/member_babies`",
            "reads delta./lake/gold/member_babies, which is outside",
        ),
        ("SELECT * FROM parquet.`/etc`", "reads parquet./etc, which is outside the lake"),
        (
            "SELECT * FROM hive_cat.cradle_gold.member_profile",
            "hive_cat.cradle_gold.member_profile, which is outside",
        ),
        (
            "SELECT * FROM cradle_ops.job_runs",
            "reads cradle_ops.job_runs, which it may not read; it may read: ",
        ),
        ("SELECT * FROM cradle_silver.nowhere", "reads unknown table cradle_silver.nowhere;"),
        (
            "SELECT * FROM member_profile",
            "reads member_profile without its database; name lake tables in full",
        ),
        (
            "SELECT * FROM `cradle_gold.member_profile`",
            "reads cradle_gold.member_profile without its database",
        ),
        (
            "SELECT * FROM tag_source__cradle_gold__member_profile",
            "tag_source__cradle_gold__member_profile without",
        ),
        # A WITH name is local: only definitions before it (or itself, if recursive) are in scope.
        ("WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a", "reads b without its database"),
        ("SELECT * FROM cradle_gold.member_profile WITH ('path' = '/x')", "table options are not allowed"),
        ("SELECT * FROM STREAM cradle_gold.member_profile", "as a stream"),
    ],
)
def test_tables_outside_the_allow_list_are_refused(spark, sql, message):
    assert message in refusal(spark, sql)


@pytest.mark.parametrize(
    ("sql", "tables"),
    [
        ("SELECT one_id, 'x' AS value FROM CRADLE_GOLD.MEMBER_PROFILE", {"cradle_gold.member_profile"}),
        (
            "SELECT p.one_id, o.sku AS value FROM `cradle_gold`.member_profile p "
            "JOIN spark_catalog.cradle_silver.`POS_ORDERS` o ON o.store_id = p.preferred_store_id",
            {"cradle_gold.member_profile", "cradle_silver.pos_orders"},
        ),
        (
            "WITH recent AS (SELECT * FROM cradle_silver.pos_orders), busiest AS (SELECT * FROM recent) "
            "SELECT store_id AS one_id, count(*) AS value FROM busiest GROUP BY store_id "
            "UNION ALL SELECT one_id, 'v' FROM cradle_gold.member_profile "
            "WHERE one_id IN (SELECT one_id FROM cradle_gold.member_profile)",
            {"cradle_gold.member_profile", "cradle_silver.pos_orders"},
        ),
        (
            "WITH RECURSIVE n AS (SELECT 1 AS k UNION ALL SELECT k + 1 FROM n WHERE k < 3) "
            "SELECT CAST(k AS STRING) AS one_id, 'v' AS value FROM n, range(2), explode(array(1, 2))",
            set(),
        ),
        ("VALUES ('a', 'b') AS v(one_id, value)", set()),
        (
            "SELECT one_id, x AS value FROM cradle_gold.member_profile LATERAL VIEW explode(array(1)) t AS x",
            {"cradle_gold.member_profile"},
        ),
    ],
)
def test_queries_over_allowed_tables_pass_and_report_what_they_read(spark, sql, tables):
    assert sqlguard.check_query(spark, sql, ORIGIN, READABLE).tables == tables


# --- functions and substitution ------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        (
            "SELECT reflect('java.lang.System', 'getenv', 'HOME')",
            "function reflect() is not allowed: it calls Java",
        ),
        ("SELECT JAVA_METHOD('java.lang.Runtime', 'getRuntime')", "function java_method() is not allowed"),
        ("SELECT * FROM cradle_gold.member_profile WHERE try_reflect('a', 'b') IS NULL", "try_reflect()"),
        ("SELECT transform(array(1), x -> reflect('a', 'b'))", "function reflect() is not allowed"),
        ("SELECT (SELECT max(java_method('a', 'b')) FROM cradle_gold.member_profile)", "java_method()"),
        ("SELECT from_protobuf(x, 'M', '/etc/passwd') FROM cradle_gold.member_profile", "reads schema files"),
        ("SELECT xpath_string('<a/>', 'a')", "parses XML"),
        ("SELECT raise_error(one_id) FROM cradle_gold.member_profile", "puts values into error messages"),
        ("SELECT aes_decrypt(unbase64('x'), 'k')", "decrypts personal data"),
        ("SELECT my_udf(one_id) FROM cradle_gold.member_profile", "my_udf() is not a Spark built-in"),
        ("SELECT system.builtin.abs(1)", "system.builtin.abs() is not a Spark built-in"),
        ("SELECT IDENTIFIER('reflect')('a', 'b')", r"IDENTIFIER(...) is not allowed"),
        (
            "SELECT * FROM table_changes('cradle_gold.member_babies', 0)",
            "table function table_changes() is not",
        ),
        ("SELECT * FROM python_worker_logs()", "table function python_worker_logs() is not allowed"),
        ("SELECT * FROM my_python_udtf(1)", "table function my_python_udtf() is not allowed"),
        (
            "SELECT * FROM cradle_gold.member_profile LATERAL VIEW my_udtf(one_id) t AS x",
            "my_udtf() is not a",
        ),
        (
            "SELECT * FROM cradle_gold.member_profile LATERAL VIEW db.udtf(one_id) t AS x",
            "db.udtf() is not a",
        ),
        ("VALUES (reflect('java.lang.System', 'getenv', 'HOME'))", "function reflect() is not allowed"),
        (
            "SELECT * FROM cradle_gold.member_profile PIVOT (max(java_method('a', 'b')) FOR one_id IN ('x'))",
            "java_method() is not allowed",
        ),
        ("SELECT '${env:CRADLE_ENCRYPTION_KEY}' AS value", "'${' is not allowed: Spark would substitute"),
        ("SELECT '${spark.app.name}'", "'${' is not allowed"),
    ],
)
def test_escape_hatch_functions_and_substitution_are_refused(spark, sql, message):
    assert message in refusal(spark, sql)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("reflect('java.lang.System', 'exit', '0') IS NULL", "function reflect() is not allowed"),
        ("java_method('java.lang.System', 'getenv', 'HOME') = 'x'", "function java_method() is not allowed"),
        ("forall(items, i -> try_reflect('a', 'b') IS NULL)", "function try_reflect() is not allowed"),
        ("qty IN (SELECT 1)", "subqueries are not allowed in an expression"),
        ("EXISTS (SELECT 1 FROM cradle_gold.member_babies)", "subqueries are not allowed in an expression"),
        ("(SELECT count(*) FROM cradle_gold.member_babies) > 0", "subqueries are not allowed"),
        ("qty > 0; DROP TABLE cradle_gold.member_babies", "not a single Spark SQL expression"),
        ("qty > ${env:HOME}", "'${' is not allowed"),
        ("assert_true(qty > 0)", "puts values into error messages"),
        ("my_udf(qty)", "my_udf() is not a Spark built-in"),
    ],
)
def test_expressions_are_single_expressions_without_tables_or_escape_hatches(spark, text, message):
    origin = "sources.yaml: source 'pos_orders', rule 'r'"
    with pytest.raises(sqlguard.SqlRefused) as err:
        sqlguard.check_expression(spark, text, origin)
    assert str(err.value).startswith(f"{origin}: ") and message in str(err.value)


def test_shipped_tag_rules_pass_the_guard(spark):
    readable = protected_columns()
    for name, spec in load_tags().tags.items():
        query = sqlguard.check_query(spark, render_rule(spec, RUN), f"tags.yaml: tag '{name}'", readable)
        assert query.tables and query.tables <= set(readable), name


def test_shipped_checks_and_mappings_pass(spark):
    for source, spec in load_sources().sources.items():
        for rule in spec.rules:
            sqlguard.check_expression(
                spark, rule.check, f"sources.yaml: source {source!r}, rule {rule.name!r}"
            )
    profile = load_profile()
    for feed in profile.orders:
        for key in ("customer", "order_id", "order_date", "amount", "channel", "store_id", "where"):
            if getattr(feed, key):
                sqlguard.check_expression(spark, getattr(feed, key), f"profile.yaml: {feed.table} {key}")
    for spec in profile.state.interactions:
        for text in (spec.date, spec.where):
            if text:
                sqlguard.check_expression(spark, text, f"profile.yaml: interaction {spec.table}")
    for id_type, spec in load_identity().identifiers.items():
        for col in spec.columns:
            if col.where:
                sqlguard.check_expression(spark, col.where, f"identity.yaml: {id_type}")


# --- protected columns and the analysed-plan check ------------------------------------------


@pytest.fixture()
def crm_sources(spark: SparkSession) -> dict[str, DataFrame]:
    crm = spark.createDataFrame(
        [("P1", "tok-1", "enc-1", "138****8000", "valid"), ("P2", None, None, None, None)],
        "one_id string, mobile_token string, mobile_enc string, mobile_masked string, mobile_status string",
    )
    return {"cradle_silver.crm_members": crm}


HIDDEN = {"cradle_silver.crm_members": ("mobile_token", "mobile_enc")}


def tags(**rules: str) -> TagsConfig:
    base = {"description": "d", "category": "app", "owner": "test"}
    return TagsConfig.model_validate({"tags": {n: {**base, "rule": r} for n, r in rules.items()}})


@pytest.mark.parametrize(
    "rule",
    [
        "SELECT one_id, mobile_token AS value FROM cradle_silver.crm_members",
        "SELECT c.one_id, upper(c.MOBILE_ENC) AS value FROM cradle_silver.crm_members c",
        "SELECT one_id, 'x' AS value FROM cradle_silver.crm_members WHERE mobile_token IS NOT NULL",
    ],
)
def test_a_rule_naming_a_protected_column_is_refused(spark, crm_sources, rule):
    with pytest.raises(
        ConfigError,
        match=r"^tags.yaml: tag 'leak': column mobile_(token|enc) of "
        r"cradle_silver.crm_members is protected",
    ):
        compile_rules(spark, tags(leak=rule), crm_sources, RUN, hidden=HIDDEN)


def test_protected_columns_are_invisible_even_through_a_star(spark, crm_sources):
    cfg = tags(everything="SELECT one_id, to_json(struct(*)) AS value FROM cradle_silver.crm_members")
    got = rule_tags(cfg, compile_rules(spark, cfg, crm_sources, RUN, hidden=HIDDEN).frames)
    expected = spark.createDataFrame(
        [
            (
                "P1",
                "everything",
                '{"one_id":"P1","mobile_masked":"138****8000","mobile_status":"valid"}',
                "rule",
                "app",
                None,
            ),
            ("P2", "everything", '{"one_id":"P2"}', "rule", "app", None),
        ],
        "one_id string, tag string, value string, source string, category string, source_date date",
    )
    assertDataFrameEqual(got, expected)


def test_the_analysed_plan_may_read_only_the_callers_views(spark, lake: Lake):
    path = lake.path(MEMBER_BABIES)
    lake.ensure(MEMBER_BABIES)
    direct = spark.read.format("delta").load(path)
    with pytest.raises(sqlguard.SqlRefused, match=r"^o: reads data outside the tables it may read \(Logical"):
        sqlguard.check_reads_only(direct, {"tag_source__x"}, "o")
    direct.createOrReplaceTempView("sqlguard_other_view")
    with pytest.raises(sqlguard.SqlRefused, match="reads view sqlguard_other_view, which it may not read"):
        sqlguard.check_reads_only(spark.sql("SELECT * FROM sqlguard_other_view"), {"tag_source__x"}, "o")
    sqlguard.check_reads_only(spark.sql("SELECT * FROM sqlguard_other_view"), {"sqlguard_other_view"}, "o")
    sqlguard.check_reads_only(spark.range(3).union(spark.sql("VALUES (CAST(9 AS BIGINT))")), set(), "o")


# --- a real lake: hostile SQL in every channel changes no table ------------------------------


def rows_for(table: Table, n: int = 3) -> list[tuple]:
    """n rows for any table schema, plus one row with every nullable column null."""
    start = date(2026, 3, 1)

    def value(field: T.StructField, i: int) -> object:
        t = field.dataType
        if isinstance(t, T.StringType):
            return f"{field.name}-{i}"
        if isinstance(t, (T.IntegerType, T.LongType)):
            return i + 1
        if isinstance(t, T.DoubleType):
            return i + 0.5
        if isinstance(t, T.DateType):
            return start + timedelta(days=i)
        if isinstance(t, T.TimestampType):
            return datetime(2026, 3, 1, 9) + timedelta(days=i)
        if isinstance(t, T.BooleanType):
            return i % 2 == 0
        if isinstance(t, T.MapType):
            return {}
        return None

    full = [tuple(value(f, i) for f in table.schema) for i in range(n)]
    sparse = tuple(value(f, n) if not f.nullable else None for f in table.schema)
    return [*full, sparse]


def delta_version(spark: SparkSession, path: str) -> int:
    return DeltaTable.forPath(spark, path).history(1).collect()[0]["version"]


def test_hostile_user_sql_in_every_channel_changes_no_table(spark, lake: Lake, lake_root: Path):
    silver = silver_tables(load_sources().sources)
    pos, crm = silver["pos_orders"], silver["crm_members"]
    tables = [pos, crm, MEMBER_BABIES, MEMBER_PROFILE, MEMBER_TAGS]
    written: dict[str, DataFrame] = {}
    for table in tables:
        rows = spark.createDataFrame(rows_for(table), table.schema)
        lake.overwrite(table, rows)
        written[table.qualified_name] = rows
    outside_path = str(lake_root / "_outside" / "orders_export")
    outside = spark.createDataFrame([(1, "a"), (2, None)], "id int, note string")
    outside.write.format("delta").mode("overwrite").save(outside_path)
    spark.sql(f"CREATE TABLE IF NOT EXISTS default.orders_export USING delta LOCATION '{outside_path}'")
    paths = {t.qualified_name: lake.path(t) for t in tables} | {"default.orders_export": outside_path}
    before = {name: delta_version(spark, path) for name, path in paths.items()}
    # The names the attacks use do resolve to these very tables: unchecked, they would hit them.
    assert spark.table("CRADLE_SILVER.POS_ORDERS").count() == 4
    assert spark.table("`spark_catalog`.`Cradle_Gold`.member_babies").count() == 4

    sources = {
        pos.qualified_name: lake.read(pos),
        crm.qualified_name: lake.read(crm),
        MEMBER_PROFILE.qualified_name: lake.read(MEMBER_PROFILE),
    }
    hidden = {pos.qualified_name: pos.protected, crm.qualified_name: crm.protected}
    babies = lake.path(MEMBER_BABIES)
    hostile_rules = {
        "delete": ("DELETE FROM CRADLE_SILVER.pos_orders WHERE amount > 0", "found DELETE"),
        "update": ("UPDATE cradle_silver.pos_orders SET amount = 0", "found UPDATE"),
        "insert": (
            "INSERT INTO cradle_gold.member_tags SELECT * FROM cradle_gold.member_tags",
            "found INSERT",
        ),
        "merge": (
            "MERGE INTO cradle_silver.pos_orders t USING cradle_silver.pos_orders s "
            "ON t.order_no = s.order_no WHEN MATCHED THEN DELETE",
            "found MERGE",
        ),
        "drop": ("DROP TABLE cradle_gold.member_babies", "found DROP TABLE"),
        "ctas": (
            "CREATE TABLE default.stolen AS SELECT * FROM cradle_gold.member_babies",
            "found CREATE TABLE AS SELECT",
        ),
        "truncate": ("TRUNCATE TABLE cradle_silver.pos_orders", "found TRUNCATE TABLE"),
        "restore": ("RESTORE TABLE cradle_silver.pos_orders TO VERSION AS OF 0", "RESTORE"),
        "vacuum": ("VACUUM cradle_silver.pos_orders RETAIN 0 HOURS", "VACUUM"),
        "call": ("CALL spark_catalog.system.rollback('cradle_silver.pos_orders', 0)", "found CALL"),
        "set": ("SET spark.databricks.delta.retentionDurationCheck.enabled = false", "found SET"),
        "add_jar": ("ADD JAR /tmp/evil.jar", "found ADD JAR"),
        "execute": ("EXECUTE IMMEDIATE 'DELETE FROM cradle_silver.pos_orders'", "EXECUTE IMMEDIATE"),
        "script": ("BEGIN DELETE FROM cradle_silver.pos_orders; END", "a SQL script"),
        "two": (
            "SELECT one_id, 'x' AS value FROM cradle_gold.member_profile; "
            "DELETE FROM cradle_silver.pos_orders",
            "only one statement",
        ),
        "upper": (
            "SELECT one_id, CAST(birth_date AS STRING) AS value FROM CRADLE_GOLD.MEMBER_BABIES",
            "restricted",
        ),
        "quoted": ("SELECT one_id, 'x' AS value FROM `cradle_gold`.`member_babies`", "restricted"),
        "three_part": (
            "SELECT one_id, 'x' AS value FROM spark_catalog.cradle_gold.member_babies",
            "restricted",
        ),
        "by_path": (f"SELECT one_id, 'x' AS value FROM delta.`{babies}`", "outside the lake"),
        "outside": (
            "SELECT CAST(id AS STRING) AS one_id, note AS value FROM default.orders_export",
            "outside",
        ),
        "reflect": (
            "SELECT one_id, reflect('java.lang.System', 'getenv', 'HOME') AS value "
            "FROM cradle_gold.member_profile",
            "reflect() is not allowed",
        ),
        "token": ("SELECT one_id, mobile_token AS value FROM cradle_silver.crm_members", "is protected"),
    }
    for name, (rule, message) in hostile_rules.items():
        with pytest.raises(ConfigError) as err:
            compile_rules(spark, tags(**{name: rule}), sources, RUN, hidden=hidden)
        assert str(err.value).startswith(f"tags.yaml: tag '{name}': ") and message in str(err.value), name

    # A fair rule over the same names still works, bound to the frames it was given.
    fair = tags(
        fair="SELECT order_no AS one_id, max(sku) AS value FROM CRADLE_SILVER.Pos_Orders GROUP BY order_no"
    )
    compiled = compile_rules(spark, fair, sources, RUN, hidden=hidden)
    assert sorted(r["one_id"] for r in compiled.frames["fair"].collect()) == [
        "order_no-0",
        "order_no-1",
        "order_no-2",
    ]

    # Ingest checks, identity where clauses and profile mappings: expressions, same policy.
    spec = load_sources().sources["crm_members"]
    for check, message in [
        ("(SELECT count(*) FROM cradle_gold.member_babies) > 0", "subqueries are not allowed"),
        ("reflect('java.lang.System', 'getenv', 'HOME') IS NOT NULL", "reflect() is not allowed"),
    ]:
        hostile = spec.model_copy(update={"rules": (spec.rules[0].model_copy(update={"check": check}),)})
        with pytest.raises(
            ConfigError, match=rf"^sources.yaml: source 'crm_members', rule '\w+': .*{re.escape(message)}"
        ):
            check_rules(spark, "crm_members", hostile)
    registry = IdentityConfig.model_validate(
        {
            "identifiers": {
                "card": {
                    "priority": 1,
                    "hub_max_records": 10,
                    "hub_max_persons": 10,
                    "columns": [
                        {
                            "table": "pos_orders",
                            "column": "member_card_no",
                            "where": "EXISTS (SELECT 1 FROM cradle_gold.member_babies)",
                        }
                    ],
                }
            }
        }
    )
    with pytest.raises(
        ConfigError, match=r"^identity.yaml: identifier 'card', column pos_orders.member_card_no"
    ):
        identifier_occurrences({"pos_orders": lake.read(pos)}, {"pos_orders": pos.keys}, registry)
    feed = OrdersFeed(
        table="pos_orders",
        customer="java_method('java.lang.System', 'getenv', 'USER')",
        order_id="order_no",
        order_date="to_date(paid_at)",
        amount="amount",
    )
    with pytest.raises(
        ConfigError, match=r"^profile.yaml: orders feed 'pos_orders', customer: function java_"
    ):
        feed_orders(lake.read(pos), feed)

    after = {name: delta_version(spark, path) for name, path in paths.items()}
    assert after == before
    for table in tables:
        assertDataFrameEqual(lake.read(table), written[table.qualified_name])
    assertDataFrameEqual(spark.read.format("delta").load(outside_path), outside)
    assert not spark.catalog.tableExists("default.stolen")


def test_childrens_dates_in_silver_are_hidden_from_rules(spark):
    """A baby's birth or due date is sensitive (PIPL Art. 28): no tag rule may read it."""
    hidden = protected_columns()
    crm = "cradle_silver.crm_members"
    assert {"baby_birth_date", "due_date"} <= set(hidden[crm])
    assert "due_date" in hidden["cradle_silver.hospital_signups"]
    with pytest.raises(
        ConfigError, match=r"column baby_birth_date of cradle_silver.crm_members is protected"
    ):
        sqlguard.check_query(
            spark,
            "SELECT one_id, CAST(baby_birth_date AS STRING) AS value FROM cradle_silver.crm_members",
            "tags.yaml: tag 'kids'",
            {crm: hidden[crm]},
        )
