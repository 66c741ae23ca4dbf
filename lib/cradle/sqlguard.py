"""The guard for SQL that people write in configuration: read-only by construction.

Tag rules (``conf/tags.yaml``) are whole queries; ingest checks (``conf/sources.yaml``),
identity ``where`` clauses (``conf/identity.yaml``) and the profile's column mappings
(``conf/profile.yaml``) are expressions. Every piece is checked here *before* Spark runs,
analyses or resolves anything, using the session's own parser (Spark's, with Delta's
extension) on the exact text. The policy:

1. **No substitution.** Text containing ``${`` is refused: Spark's parser substitutes
   ``${spark.x}``, ``${env:X}`` and ``${system:x}`` into SQL text, which would hand a rule
   the environment's secrets.
2. **A query is one SELECT.** A rule must be a single statement built only from query
   operators (SELECT, WITH, joins, set operations, VALUES, window, pivot, generators; see
   :data:`QUERY_NODES`). Anything else is refused by name before it can run: DDL, INSERT,
   UPDATE, DELETE, MERGE, CALL, SET, RESET, ADD JAR, CACHE, REFRESH, USE, EXPLAIN,
   EXECUTE IMMEDIATE, SQL scripts, more than one statement, ``TRANSFORM ... USING``
   (runs a program), time travel and ``IDENTIFIER(...)`` (a table named by a value).
3. **Tables from an allow-list.** Every table a query reads must be named
   ``database.table`` (or ``spark_catalog.database.table``); names are compared in lower
   case, as Spark resolves them, whatever the case, quoting or back-ticks. The name must be
   one the caller allows. Tables the catalogue marks ``restricted`` are refused even if a
   caller lists them. Paths (``delta.`/x```), other catalogues, unqualified names (other
   than the query's own ``WITH`` names), table options and streaming reads are refused.
4. **Built-in functions only, minus the escape hatches.** Functions must be Spark
   built-ins, called by their one-part name (persistent and temporary functions can load
   jars or run Python). :data:`DENIED_FUNCTIONS` are refused although built in: they call
   Java methods, read files named in the SQL, decrypt personal data, or put values into
   error messages (and so into logs). Table-valued functions are limited to generators
   and ``range`` (Delta's ``table_changes`` reads any table by a string).
5. **Expressions are expressions.** A check, a ``where`` clause or a column mapping is one
   expression with no subquery, hence no table; the function policy applies.
6. **Protected columns are invisible.** Columns the catalogue marks ``protected`` (tokens
   and ciphertext of personal data) are dropped from the frames rules read
   (:func:`hide_columns`), and a query naming one is refused, so no rule can copy them
   into its output.
7. **Belt and braces.** After a caller swaps table names for its temporary views
   (:func:`bind`), the query is parsed and checked again, and once Spark has analysed it
   (lazily: nothing runs) :func:`check_reads_only` walks the analysed plan: its leaves may
   only be the caller's views, literal rows, ``range`` and ``WITH`` references.

Refusals are :class:`SqlRefused` (a :class:`~cradle.config.ConfigError`): one line naming
the file, the rule and the problem, e.g.
``tags.yaml: tag 'kids': reads cradle_gold.member_babies, which is restricted (...)``.

    >>> query = check_query(spark, rule_sql, "tags.yaml: tag 'x'", {"cradle_silver.pos_orders": ()})
    >>> rows = spark.sql(bind(spark, query, {"cradle_silver.pos_orders": "v_pos_orders"}))
    >>> check_reads_only(rows, {"v_pos_orders"}, query.origin)
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field

from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from cradle.catalog import LAYERS, TABLES
from cradle.config import ConfigError

_LOGICAL = "org.apache.spark.sql.catalyst.plans.logical."
_ANALYSIS = "org.apache.spark.sql.catalyst.analysis."
_EXPRESSIONS = "org.apache.spark.sql.catalyst.expressions."

# Parsed (unresolved) plan operators a query may consist of. An allow-list: a statement
# of any other kind, including kinds added by a later Spark or Delta, is refused.
QUERY_NODES = frozenset(
    {
        *(
            _LOGICAL + n
            for n in (
                "Project",
                "Filter",
                "Aggregate",
                "Join",
                "LateralJoin",
                "Union",
                "Intersect",
                "Except",
                "Distinct",
                "Sort",
                "GlobalLimit",
                "LocalLimit",
                "Offset",
                "SubqueryAlias",
                "UnresolvedWith",
                "WithWindowDefinition",
                "Generate",
                "Pivot",
                "Unpivot",
                "OneRowRelation",
                "LocalRelation",
                "Sample",
                "RepartitionByExpression",
                "UnresolvedHint",
            )
        ),
        *(
            _ANALYSIS + n
            for n in (
                "UnresolvedRelation",
                "UnresolvedInlineTable",
                "UnresolvedTableValuedFunction",
                "UnresolvedSubqueryColumnAliases",
                "UnresolvedTVFAliases",
                "UnresolvedHaving",
            )
        ),
        _EXPRESSIONS + "PipeOperator",  # SQL pipe syntax (|>): a marker between operators
    }
)

# What a refused statement is, in the words a rule author knows.
STATEMENT_NAMES = {
    "DeleteFromTable": "DELETE",
    "UpdateTable": "UPDATE",
    "MergeIntoTable": "MERGE",
    "InsertIntoStatement": "INSERT",
    "OverwriteByExpression": "INSERT OVERWRITE",
    "AppendData": "INSERT",
    "Call": "CALL",
    "SetCommand": "SET",
    "ResetCommand": "RESET",
    "AddJarsCommand": "ADD JAR",
    "AddFilesCommand": "ADD FILE",
    "AddArchivesCommand": "ADD ARCHIVE",
    "CacheTable": "CACHE TABLE",
    "CacheTableAsSelect": "CACHE TABLE",
    "UncacheTable": "UNCACHE TABLE",
    "RefreshTable": "REFRESH TABLE",
    "RefreshResource": "REFRESH",
    "SetCatalogAndNamespace": "USE",
    "CompoundBody": "a SQL script (BEGIN ... END)",
    "UnresolvedExecuteImmediate": "EXECUTE IMMEDIATE",
    "ExecuteImmediateQuery": "EXECUTE IMMEDIATE",
    "ScriptTransformation": "TRANSFORM ... USING (it runs a program)",
    "RelationTimeTravel": "time travel (VERSION/TIMESTAMP AS OF)",
    "PlanWithUnresolvedIdentifier": "IDENTIFIER(...) (a table named by a value)",
    "CreateTable": "CREATE TABLE",
    "CreateTableAsSelect": "CREATE TABLE AS SELECT",
    "CreateView": "CREATE VIEW",
    "CreateViewCommand": "CREATE VIEW",
    "DropTable": "DROP TABLE",
    "CreateVariable": "DECLARE VARIABLE",
    "SetVariable": "SET VARIABLE",
    "ExplainCommand": "EXPLAIN",
    "AddColumns": "ALTER TABLE",
    "TruncateTable": "TRUNCATE TABLE",
    "VacuumTableCommand": "VACUUM",
    "OptimizeTableCommand": "OPTIMIZE",
    "RestoreTableStatement": "RESTORE",
}

# Built-in functions refused in user SQL, and why.
DENIED_FUNCTIONS: dict[str, str] = {
    **dict.fromkeys(("reflect", "java_method", "try_reflect"), "calls Java methods"),
    **dict.fromkeys(
        ("from_protobuf", "to_protobuf", "from_avro", "to_avro", "schema_of_avro"),
        "reads schema files named in the SQL",
    ),
    **dict.fromkeys(
        (
            "xpath",
            "xpath_boolean",
            "xpath_double",
            "xpath_float",
            "xpath_int",
            "xpath_long",
            "xpath_number",
            "xpath_short",
            "xpath_string",
            "from_xml",
            "schema_of_xml",
        ),
        "parses XML, whose entities can name files and URLs",
    ),
    **dict.fromkeys(("aes_decrypt", "try_aes_decrypt"), "decrypts personal data"),
    **dict.fromkeys(("raise_error", "assert_true"), "puts values into error messages and logs"),
}

# Table-valued functions allowed in a query's FROM: generators and range, which read
# nothing. Others read tables or files by a string (Delta's table_changes) or the engine.
ALLOWED_TABLE_FUNCTIONS = frozenset(
    {
        "range",
        "explode",
        "explode_outer",
        "inline",
        "inline_outer",
        "posexplode",
        "posexplode_outer",
        "stack",
        "json_tuple",
        "variant_explode",
        "variant_explode_outer",
    }
)

# Leaves an analysed query may have besides the caller's views.
ANALYSED_LEAVES = frozenset(
    {_LOGICAL + n for n in ("OneRowRelation", "LocalRelation", "Range", "CTERelationRef")}
)

SPARK_CATALOG = "spark_catalog"
LAKE_DATABASES = frozenset(f"cradle_{layer}" for layer in LAYERS)


class SqlRefused(ConfigError):
    """User SQL that the policy above does not allow; the message is one line."""


def refused(origin: str, problem: str) -> SqlRefused:
    return SqlRefused(f"{origin}: {problem}")


@dataclass(frozen=True)
class TableRef:
    """A table a query reads: its qualified name (lower-case) and where the name is."""

    name: str
    start: int
    stop: int  # exclusive


@dataclass(frozen=True)
class Query:
    """A query that passed :func:`check_query`."""

    origin: str
    sql: str
    refs: tuple[TableRef, ...]

    @property
    def tables(self) -> frozenset[str]:
        return frozenset(r.name for r in self.refs)


@dataclass
class _Found:
    """What one walk over a parsed plan saw."""

    relations: list[tuple[tuple[str, ...], int | None, int | None]] = field(default_factory=list)
    columns: set[str] = field(default_factory=set)


# --- entry points ----------------------------------------------------------------------


def check_query(spark: SparkSession, sql: str, origin: str, readable: Mapping[str, Collection[str]]) -> Query:
    """Parse ``sql`` (nothing runs) and apply the policy for queries.

    ``readable`` maps each qualified table the query may read to the columns hidden from
    it (its protected columns). Returns the tables it reads and where they are named.
    """
    readable = {name.lower(): frozenset(c.lower() for c in hidden) for name, hidden in readable.items()}
    found = _inspect_query(spark, sql, origin)
    refs = []
    for parts, start, stop in dict.fromkeys(found.relations):  # a node reached twice is one name
        name = _qualified(parts, origin)
        _check_table(name, readable, origin)
        if start is None or stop is None:
            raise refused(origin, f"cannot locate the name of table {name} in the SQL text")
        refs.append(TableRef(name, start, stop))
    for ref in refs:
        hidden = sorted(found.columns & readable[ref.name])
        if hidden:
            raise refused(
                origin,
                f"column {hidden[0]} of {ref.name} is protected (personal data: a token, "
                "ciphertext, or a child's birth or due date) and hidden from user SQL",
            )
    return Query(origin, sql, tuple(refs))


def bind(spark: SparkSession, query: Query, views: Mapping[str, str]) -> str:
    """The query's SQL with each table name swapped for the caller's temporary view.

    The result is parsed and checked again: a single query reading only those views.
    """
    sql = query.sql
    for ref in sorted(query.refs, key=lambda r: r.start, reverse=True):
        sql = sql[: ref.start] + f"`{views[ref.name]}`" + sql[ref.stop :]
    allowed = {v.lower() for v in views.values()}
    for parts, _, _ in _inspect_query(spark, sql, query.origin).relations:
        if len(parts) != 1 or parts[0].lower() not in allowed:
            raise refused(query.origin, f"reads {'.'.join(parts)} after binding its tables")
    return sql


def check_reads_only(rows: DataFrame, views: Collection[str], origin: str) -> None:
    """Walk the analysed plan of ``rows`` (nothing runs): every relation it reads must be
    one of ``views`` (temporary views), literal rows, ``range`` or a ``WITH`` reference."""
    allowed = {v.lower() for v in views}
    for node in _plan_nodes(rows._jdf.queryExecution().analyzed(), into_views=False):
        cls = node.getClass().getName()
        if cls == _LOGICAL + "View":
            name = node.desc().identifier().unquotedString()
            if not node.isTempView() or name.lower() not in allowed:
                raise refused(origin, f"reads view {name}, which it may not read")
        elif node.children().isEmpty() and node.innerChildren().isEmpty() and cls not in ANALYSED_LEAVES:
            raise refused(origin, f"reads data outside the tables it may read ({_simple(cls)})")


def check_expression(spark: SparkSession, text: str, origin: str) -> None:
    """Parse ``text`` as one expression (nothing runs) and apply the policy for
    expressions: no subqueries or tables, built-in functions only, no escape hatches."""
    _no_substitution(text, origin)
    try:
        parsed = _parser(spark).parseExpression(text)
    except (Py4JJavaError, PySparkException) as err:
        raise refused(origin, f"not a single Spark SQL expression: {_java_message(err)}") from None
    for expr in _expression_nodes(parsed):
        if _is_subquery(spark, expr):
            raise refused(origin, "subqueries are not allowed in an expression (it may read no table)")
        _check_expression_node(spark, expr, origin)


def expression(spark: SparkSession, text: str, origin: str) -> Column:
    """``F.expr(text)`` once :func:`check_expression` has passed it."""
    check_expression(spark, text, origin)
    return F.expr(text)


def hide_columns(rows: DataFrame, hidden: Collection[str]) -> DataFrame:
    """``rows`` without the ``hidden`` (protected) columns: what user SQL may see."""
    drop = {c.lower() for c in hidden}
    return rows.select(*[F.col(f"`{c}`") for c in rows.columns if c.lower() not in drop])


def restricted_tables() -> frozenset[str]:
    """Qualified names of the catalogue's restricted tables."""
    return frozenset(name for name, table in TABLES.items() if table.restricted)


# --- the walk over parsed plans --------------------------------------------------------


def _inspect_query(spark: SparkSession, sql: str, origin: str) -> _Found:
    _no_substitution(sql, origin)
    try:
        plan = _parser(spark).parsePlan(sql)
    except (Py4JJavaError, PySparkException) as err:
        if _has_second_statement(sql):
            raise refused(origin, "only one statement (a single SELECT query) is allowed") from None
        raise refused(origin, f"not valid Spark SQL: {_java_message(err)}") from None
    found = _Found()
    stack: list[tuple[object, frozenset[str]]] = [(plan, frozenset())]
    while stack:
        node, ctes = stack.pop()
        cls = node.getClass().getName()
        if cls not in QUERY_NODES:
            what = STATEMENT_NAMES.get(_simple(cls), _simple(cls))
            raise refused(origin, f"only a single SELECT query is allowed, found {what}")
        if cls == _ANALYSIS + "UnresolvedRelation":
            _check_relation_options(node, origin)
            parts = tuple(_seq(node.multipartIdentifier()))
            if not (len(parts) == 1 and parts[0].lower() in ctes):
                start, stop = _span(node)
                found.relations.append((parts, start, stop))
        elif cls == _ANALYSIS + "UnresolvedTableValuedFunction":
            name = ".".join(_seq(node.name())).lower()
            if name not in ALLOWED_TABLE_FUNCTIONS:
                allowed = ", ".join(sorted(ALLOWED_TABLE_FUNCTIONS))
                raise refused(origin, f"table function {name}() is not allowed; allowed: {allowed}")
        for expr in _seq(node.expressions()):
            for inner in _expression_nodes(expr):
                _check_expression_node(spark, inner, origin)
                if inner.getClass().getName() in (_ANALYSIS + "UnresolvedAttribute",):
                    found.columns.add(_seq(inner.nameParts())[-1].lower())
        if cls == _LOGICAL + "UnresolvedWith":
            defined = list(ctes)
            recursive = bool(node.allowRecursion())
            for pair in _seq(node.cteRelations()):
                name = pair._1().lower()
                scope = frozenset(defined + ([name] if recursive else []))
                stack.append((pair._2(), scope))
                defined.append(name)
            stack.append((node.child(), frozenset(defined)))
            continue
        for child in _seq(node.children()) + _seq(node.innerChildren()):
            stack.append((child, ctes))
    return found


def _check_expression_node(spark: SparkSession, expr: object, origin: str) -> None:
    cls = expr.getClass().getName()
    if "UnresolvedIdentifier" in cls:
        raise refused(origin, "IDENTIFIER(...) is not allowed: name columns and functions directly")
    if cls == _ANALYSIS + "UnresolvedFunction":
        parts = [p.lower() for p in _seq(expr.nameParts())]
    elif cls == _ANALYSIS + "UnresolvedGenerator":  # LATERAL VIEW f(...): a FunctionIdentifier
        ident = expr.name()
        qualifiers = [q.get() for q in (ident.catalog(), ident.database()) if q.isDefined()]
        parts = [p.lower() for p in (*qualifiers, ident.funcName())]
    else:
        return
    name = ".".join(parts)
    if len(parts) != 1 or parts[0] not in _builtin_functions(spark):
        raise refused(origin, f"function {name}() is not a Spark built-in; only built-ins are allowed")
    if name in DENIED_FUNCTIONS:
        raise refused(origin, f"function {name}() is not allowed: it {DENIED_FUNCTIONS[name]}")


def _check_relation_options(node: object, origin: str) -> None:
    name = ".".join(_seq(node.multipartIdentifier()))
    if node.isStreaming():
        raise refused(origin, f"reads {name} as a stream; rules read tables")
    if not node.options().isEmpty():
        raise refused(origin, f"reads {name} WITH (options); table options are not allowed")


def _qualified(parts: tuple[str, ...], origin: str) -> str:
    lowered = [p.lower() for p in parts]
    if len(lowered) == 3 and lowered[0] == SPARK_CATALOG:
        lowered = lowered[1:]
    if len(lowered) == 1:
        raise refused(
            origin,
            f"reads {parts[0]} without its database; name lake tables in full (cradle_silver.pos_orders)",
        )
    if len(lowered) != 2:
        raise refused(origin, f"reads {'.'.join(parts)}, which is outside the lake")
    return ".".join(lowered)


def _check_table(name: str, readable: Mapping[str, frozenset[str]], origin: str) -> None:
    if name in restricted_tables():
        raise refused(
            origin,
            f"reads {name}, which is restricted (sensitive personal data); user SQL may not read it",
        )
    if name not in readable:
        may = f"it may read: {', '.join(sorted(readable)) or 'no table'}"
        if name in TABLES:
            raise refused(origin, f"reads {name}, which it may not read; {may}")
        if name.split(".", maxsplit=1)[0] in LAKE_DATABASES:
            raise refused(origin, f"reads unknown table {name}; {may}")
        raise refused(origin, f"reads {name}, which is outside the lake; {may}")


def _span(node: object) -> tuple[int | None, int | None]:
    origin = node.origin()
    start, stop = origin.startIndex(), origin.stopIndex()
    if start.isEmpty() or stop.isEmpty():
        return None, None
    return int(start.get()), int(stop.get()) + 1


# --- py4j helpers ----------------------------------------------------------------------


def _parser(spark: SparkSession):
    return spark._jsparkSession.sessionState().sqlParser()


def _seq(scala_seq) -> list:
    items, it = [], scala_seq.iterator()
    while it.hasNext():
        items.append(it.next())
    return items


def _expression_nodes(root: object) -> Iterator[object]:
    """Every node of an expression tree, iteratively (a long AND chain is deep)."""
    stack = [root]
    while stack:
        expr = stack.pop()
        yield expr
        stack.extend(_seq(expr.children()))


def _plan_nodes(root: object, into_views: bool = True) -> Iterator[object]:
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        if not into_views and node.getClass().getName() == _LOGICAL + "View":
            continue
        stack.extend(_seq(node.children()) + _seq(node.innerChildren()))


def _is_subquery(spark: SparkSession, expr: object) -> bool:
    return _plan_expression_class(spark).isAssignableFrom(expr.getClass())


def _plan_expression_class(spark: SparkSession):
    jvm = spark.sparkContext._jvm
    return jvm.org.apache.spark.util.Utils.classForName(_EXPRESSIONS + "PlanExpression", True, False)


_BUILTINS: dict[int, frozenset[str]] = {}


def _builtin_functions(spark: SparkSession) -> frozenset[str]:
    """Names in Spark's built-in function registry (not the session's, which also holds
    temporary and extension functions)."""
    key = id(spark.sparkContext._jvm)
    if key not in _BUILTINS:
        registry = spark.sparkContext._jvm.org.apache.spark.sql.catalyst.analysis.FunctionRegistry.builtin()
        _BUILTINS[key] = frozenset(f.funcName().lower() for f in _seq(registry.listFunction()))
    return _BUILTINS[key]


def _java_message(err: Exception) -> str:
    """The first meaningful line of a JVM error (Spark's parse errors start with a blank)."""
    text = str(err.java_exception.getMessage()) if isinstance(err, Py4JJavaError) else str(err)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def _simple(class_name: str) -> str:
    return class_name.rsplit(".", 1)[-1].rstrip("$")


def _no_substitution(text: str, origin: str) -> None:
    if "${" in text:
        raise refused(
            origin,
            "'${' is not allowed: Spark would substitute configuration and environment values into the SQL",
        )


def _has_second_statement(sql: str) -> bool:
    """True when SQL text follows a ';' outside quotes and comments (for the error message)."""
    i, n, after_semicolon = 0, len(sql), False
    while i < n:
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        c = sql[i]
        if c in "'\"`":
            if after_semicolon:
                return True
            i += 1
            while i < n and sql[i] != c:
                i += 2 if sql[i] == "\\" and c != "`" else 1
            i += 1
            continue
        if c == ";":
            after_semicolon = True
        elif not c.isspace() and after_semicolon:
            return True
        i += 1
    return False
