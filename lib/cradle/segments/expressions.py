"""The segment expression language: small, safe and compiled to Spark Columns.

    formula_stage = 1 and days_to_next_stage between 0 and 30
    life_stage = 'pregnant' and has_tag('lbs_maternity_hospital') and first_purchase_date is null
    city_tier in (4, 5) and value_tier = 'high' and consent('marketing_sms')
    last_purchase_date < run_date - 90 days or tag('buyer_formula') = 'stage_2'

Grammar (keywords are case-insensitive; precedence from loosest: or, and, not, comparison,
``+ -``, ``* /``, unary minus):

    expr       := and_expr ('or' and_expr)*
    and_expr   := not_expr ('and' not_expr)*
    not_expr   := 'not' not_expr | predicate
    predicate  := sum [ op sum                       op: = == != <> < <= > >=
                      | ['not'] 'in' '(' sum (',' sum)* ')'
                      | ['not'] 'between' sum 'and' sum
                      | 'is' ['not'] 'null' ]
    sum        := product (('+' | '-') product)*     date + N days, date - N days
    product    := unary (('*' | '/') unary)*
    unary      := '-' unary | atom
    atom       := number ['day' | 'days'] | 'string' | true | false | null | date 'YYYY-MM-DD'
                | run_date | field | function '(' args ')' | '(' expr ')'

Names are the profile's fields (``cradle_gold.member_profile``) and ``run_date``; anything
else is an error naming the segment. Functions are an allow-list (:data:`FUNCTIONS`); tags
are reached only through ``has_tag('t')`` and ``tag('t')``, with ``t`` a tag of
``conf/tags.yaml``. A comparison involving a missing value (null) is false, so ``not``
behaves as in plain English: ``not city_tier = 1`` includes members whose tier is unknown.

Size is bounded (:class:`Limits`, set under ``limits:`` in ``conf/segments.yaml``): an
expression with too many tokens, or nested too deep, is a ConfigError naming the segment,
never a ``RecursionError``. Chains of ``and`` / ``or`` may be long (they compile to a
balanced tree); nesting (parentheses, calls, ``not``, arithmetic) is what the depth bounds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from pyspark.sql import Column
from pyspark.sql import functions as F

from cradle.config import ConfigError

TAG_PREFIX = "tag__"
CONSENT_PURPOSES = (
    "marketing_sms",
    "marketing_wechat",
    "marketing_app_push",
    "ad_targeting",
    "third_party_sharing",
)
# name -> (min args, max args or None, what it does)
FUNCTIONS: dict[str, tuple[int, int | None, str]] = {
    "has_tag": (1, 1, "has_tag('t'): the person holds tag t (any value)"),
    "tag": (1, 1, "tag('t'): the value of tag t, or null"),
    "consent": (1, 1, "consent('purpose'): consent granted for the purpose (false when unknown)"),
    "days_since": (1, 1, "days_since(d): days from date d to the run date"),
    "days_until": (1, 1, "days_until(d): days from the run date to date d"),
    "coalesce": (2, None, "coalesce(a, b, ...): first non-null"),
    "lower": (1, 1, "lower(s)"),
    "upper": (1, 1, "upper(s)"),
    "abs": (1, 1, "abs(x)"),
    "least": (2, None, "least(a, b, ...)"),
    "greatest": (2, None, "greatest(a, b, ...)"),
}
STRING_ARG = {"has_tag", "tag", "consent"}
KEYWORDS = {"and", "or", "not", "in", "between", "is", "null", "true", "false", "date", "day", "days"}
COMPARISONS = {"=": "=", "==": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}

# Far above any expression a person reviews (the shipped segments have at most 30 tokens
# and depth 4); low enough that parsing and compiling, which recurse once per level of
# nesting, stay far from Python's recursion limit (1,000 frames; a parenthesis costs 8).
MAX_TOKENS = 2000
MAX_DEPTH = 32
# Ceilings a configuration may raise the limits to (still clear of the recursion limit).
TOKENS_CEILING = 20000
DEPTH_CEILING = 64


@dataclass(frozen=True)
class Limits:
    """How large a segment expression may be: tokens (words, numbers, strings, operators)
    and depth (levels of nesting; a chain of ``and`` or ``or`` counts as one level)."""

    max_tokens: int = MAX_TOKENS
    max_depth: int = MAX_DEPTH


TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+(?:\.\d+)?)|(?P<string>'(?:[^']|'')*')|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op><=|>=|<>|!=|==|[=<>+\-*/(),]))"
)


# --- syntax tree -------------------------------------------------------------------------


@dataclass(frozen=True)
class Lit:
    value: object


@dataclass(frozen=True)
class Name:
    name: str


@dataclass(frozen=True)
class Interval:
    days: int


@dataclass(frozen=True)
class Call:
    fn: str
    args: tuple


@dataclass(frozen=True)
class Unary:
    op: str  # '-' or 'not'
    arg: object


@dataclass(frozen=True)
class Binary:
    op: str  # and, or, comparisons, + - * /
    left: object
    right: object


@dataclass(frozen=True)
class In:
    arg: object
    items: tuple
    negated: bool


@dataclass(frozen=True)
class Between:
    arg: object
    low: object
    high: object
    negated: bool


@dataclass(frozen=True)
class IsNull:
    arg: object
    negated: bool


@dataclass(frozen=True)
class Expression:
    """A parsed segment expression and what it refers to."""

    text: str
    tree: object
    fields: frozenset[str] = field(default_factory=frozenset)
    tags: frozenset[str] = field(default_factory=frozenset)


# --- parsing -------------------------------------------------------------------------------


class _Parser:
    def __init__(
        self, segment: str, text: str, fields: set[str], tags: set[str], limits: Limits = Limits()
    ) -> None:
        self.segment, self.text, self.limits = segment, text, limits
        self.known_fields, self.known_tags = fields, tags
        self.tokens = self._tokenise(text)
        if len(self.tokens) > limits.max_tokens:
            raise self.error(
                f"expression has {len(self.tokens)} tokens, more than the limit of {limits.max_tokens} "
                "(limits.max_tokens in segments.yaml); split it into smaller segments or use 'in (...)'"
            )
        self.pos = 0
        self.depth = 0
        self.used_fields: set[str] = set()
        self.used_tags: set[str] = set()

    def error(self, message: str) -> ConfigError:
        text = " ".join(self.text.split())
        shown = text if len(text) <= 200 else f"{text[:200]}..."
        return ConfigError(f"segments.yaml: segment '{self.segment}': {message} in: {shown}")

    def too_deep(self) -> ConfigError:
        return self.error(
            f"expression is nested more than {self.limits.max_depth} levels deep "
            "(limits.max_depth in segments.yaml); flatten it"
        )

    def nest(self) -> None:
        """Enter one level of nesting (a parenthesis, a call, a ``not`` or a unary minus)."""
        self.depth += 1
        if self.depth > self.limits.max_depth:
            raise self.too_deep()

    def _tokenise(self, text: str) -> list[tuple[str, str]]:
        tokens, pos = [], 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise self.error(f"unexpected character {text[pos:].strip()[:1]!r} at position {pos}")
            kind = m.lastgroup or "op"
            value = m.group(kind)
            if kind == "name" and value.lower() in KEYWORDS:
                kind, value = "kw", value.lower()
            tokens.append((kind, value))
            pos = m.end()
        return tokens

    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        i = self.pos + offset
        return self.tokens[i] if i < len(self.tokens) else None

    def accept(self, kind: str, value: str | None = None) -> str | None:
        tok = self.peek()
        if tok and tok[0] == kind and (value is None or tok[1] == value):
            self.pos += 1
            return tok[1]
        return None

    def expect(self, kind: str, value: str) -> None:
        if self.accept(kind, value) is None:
            found = self.peek()
            raise self.error(f"expected {value!r} but found {found[1] if found else 'the end'!r}")

    def parse(self) -> object:
        if not self.tokens:
            raise self.error("empty expression")
        tree = self.expr()
        if self.peek() is not None:
            raise self.error(f"unexpected {self.peek()[1]!r}")
        return tree

    def expr(self) -> object:
        left = self.and_expr()
        while self.accept("kw", "or"):
            left = Binary("or", left, self.and_expr())
        return left

    def and_expr(self) -> object:
        left = self.not_expr()
        while self.accept("kw", "and"):
            left = Binary("and", left, self.not_expr())
        return left

    def not_expr(self) -> object:
        if self.accept("kw", "not"):
            self.nest()
            inner = self.not_expr()
            self.depth -= 1
            return Unary("not", inner)
        return self.predicate()

    def predicate(self) -> object:
        left = self.sum()
        tok = self.peek()
        if tok is None:
            return left
        if tok[0] == "op" and tok[1] in COMPARISONS:
            self.pos += 1
            return Binary(COMPARISONS[tok[1]], left, self.sum())
        negated = False
        if tok == ("kw", "not") and self.peek(1) in (("kw", "in"), ("kw", "between")):
            self.pos += 1
            negated = True
        if self.accept("kw", "in"):
            self.expect("op", "(")
            items = [self.sum()]
            while self.accept("op", ","):
                items.append(self.sum())
            self.expect("op", ")")
            return In(left, tuple(items), negated)
        if self.accept("kw", "between"):
            low = self.sum()
            self.expect("kw", "and")
            return Between(left, low, self.sum(), negated)
        if self.accept("kw", "is"):
            neg = self.accept("kw", "not") is not None
            self.expect("kw", "null")
            return IsNull(left, neg)
        return left

    def sum(self) -> object:
        left = self.product()
        while (op := self.accept("op", "+") or self.accept("op", "-")) is not None:
            left = Binary(op, left, self.product())
        return left

    def product(self) -> object:
        left = self.unary()
        while (op := self.accept("op", "*") or self.accept("op", "/")) is not None:
            left = Binary(op, left, self.unary())
        return left

    def unary(self) -> object:
        if self.accept("op", "-"):
            self.nest()
            inner = self.unary()
            self.depth -= 1
            return Unary("-", inner)
        return self.atom()

    def atom(self) -> object:
        tok = self.peek()
        if tok is None:
            raise self.error("expression ends too early")
        kind, value = tok
        self.pos += 1
        if kind == "number":
            number = float(value) if "." in value else int(value)
            if self.accept("kw", "day") or self.accept("kw", "days"):
                if not isinstance(number, int):
                    raise self.error(f"a number of days must be whole, got {value}")
                return Interval(number)
            return Lit(number)
        if kind == "string":
            return Lit(value[1:-1].replace("''", "'"))
        if kind == "kw" and value in ("true", "false"):
            return Lit(value == "true")
        if kind == "kw" and value == "null":
            return Lit(None)
        if kind == "kw" and value == "date":
            text = self.accept("string")
            try:
                return Lit(date.fromisoformat(text[1:-1]) if text else None)
            except ValueError:
                raise self.error(f"not a date: {text}") from None
        if kind == "op" and value == "(":
            self.nest()
            inner = self.expr()
            self.expect("op", ")")
            self.depth -= 1
            return inner
        if kind == "name":
            name = value.lower()
            if self.accept("op", "("):
                return self.call(name)
            if name == "run_date":
                return Name("run_date")
            if name == "consent":
                raise self.error("consent is per purpose: write consent('marketing_sms')")
            if name not in self.known_fields:
                raise self.error(
                    f"unknown name {value!r}; use a profile field ({', '.join(sorted(self.known_fields))}), "
                    "run_date, or has_tag('t') / tag('t') for tags"
                )
            self.used_fields.add(name)
            return Name(name)
        raise self.error(f"unexpected {value!r}")

    def call(self, fn: str) -> Call:
        if fn not in FUNCTIONS:
            raise self.error(f"function {fn!r} is not allowed; allowed: {', '.join(sorted(FUNCTIONS))}")
        args: list[object] = []
        self.nest()
        if not self.accept("op", ")"):
            args.append(self.expr())
            while self.accept("op", ","):
                args.append(self.expr())
            self.expect("op", ")")
        self.depth -= 1
        low, high, usage = FUNCTIONS[fn]
        if len(args) < low or (high is not None and len(args) > high):
            raise self.error(f"{fn}() takes {usage}")
        if fn in STRING_ARG:
            arg = args[0]
            if not (isinstance(arg, Lit) and isinstance(arg.value, str)):
                raise self.error(f"{fn}() needs a quoted name: {usage}")
            if fn == "consent":
                if arg.value not in CONSENT_PURPOSES:
                    raise self.error(
                        f"unknown consent purpose {arg.value!r}; known: {', '.join(CONSENT_PURPOSES)}"
                    )
                self.used_fields.add("consent")
            elif arg.value not in self.known_tags:
                raise self.error(f"unknown tag {arg.value!r} (tags are declared in conf/tags.yaml)")
            else:
                self.used_tags.add(arg.value)
        return Call(fn, tuple(args))


def parse(
    segment: str,
    text: str,
    fields: set[str] | frozenset[str],
    tags: set[str] | frozenset[str],
    limits: Limits = Limits(),
) -> Expression:
    """Parse ``text`` for ``segment``; unknown names, tags and functions, and expressions
    over the ``limits``, are ConfigErrors."""
    parser = _Parser(segment, text, set(fields), set(tags), limits)
    tree = parser.parse()
    if depth(tree) > limits.max_depth:
        raise parser.too_deep()
    if uses_interval_badly(tree):
        raise parser.error("'N days' can only be added to or taken from a date (run_date + 30 days)")
    return Expression(text, tree, frozenset(parser.used_fields), frozenset(parser.used_tags))


# --- compiling -----------------------------------------------------------------------------


def tag_column(tag: str) -> str:
    """The wide frame's column holding ``tag``'s value."""
    return f"{TAG_PREFIX}{tag}"


def to_column(expression: Expression, run_date: date) -> Column:
    """The expression as a boolean Column over the wide frame (null counts as false)."""
    return F.coalesce(_col(expression.tree, run_date), F.lit(False))


def _col(node: object, run_date: date) -> Column:
    if isinstance(node, Lit):
        return F.lit(node.value)
    if isinstance(node, Name):
        return F.lit(run_date) if node.name == "run_date" else F.col(node.name)
    if isinstance(node, Interval):
        raise ValueError("a number of days only makes sense added to or taken from a date")
    if isinstance(node, Unary):
        inner = _col(node.arg, run_date)
        return ~F.coalesce(inner, F.lit(False)) if node.op == "not" else -inner
    if isinstance(node, Binary):
        return _binary(node, run_date)
    if isinstance(node, In):
        test = _col(node.arg, run_date).isin(*[_col(i, run_date) for i in node.items])
        test = F.coalesce(test, F.lit(False))
        return ~test if node.negated else test
    if isinstance(node, Between):
        arg = _col(node.arg, run_date)
        test = F.coalesce(arg.between(_col(node.low, run_date), _col(node.high, run_date)), F.lit(False))
        return ~test if node.negated else test
    if isinstance(node, IsNull):
        arg = _col(node.arg, run_date)
        return arg.isNotNull() if node.negated else arg.isNull()
    if isinstance(node, Call):
        return _call(node, run_date)
    raise TypeError(f"unknown node {node!r}")


def _chain(node: Binary) -> list[object]:
    """Operands of a left-deep chain of the same ``and`` / ``or``, in order (iteratively:
    a chain of a thousand terms is a thousand levels deep)."""
    op, operands = node.op, []
    current: object = node
    while isinstance(current, Binary) and current.op == op:
        operands.append(current.right)
        current = current.left
    operands.append(current)
    return operands[::-1]


def _logical(node: Binary, run_date: date) -> Column:
    """An ``and`` / ``or`` chain as a balanced tree of Columns (depth log2 of its length)."""
    false = F.lit(False)
    cols = [F.coalesce(_col(operand, run_date), false) for operand in _chain(node)]
    combine = (lambda a, b: a & b) if node.op == "and" else (lambda a, b: a | b)
    while len(cols) > 1:
        paired = [combine(cols[i], cols[i + 1]) for i in range(0, len(cols) - 1, 2)]
        cols = paired + ([cols[-1]] if len(cols) % 2 else [])
    return cols[0]


def _binary(node: Binary, run_date: date) -> Column:
    if node.op in ("and", "or"):
        return _logical(node, run_date)
    if node.op in ("+", "-") and isinstance(node.right, Interval):
        left = _col(node.left, run_date)
        days = node.right.days
        return F.date_add(left, days) if node.op == "+" else F.date_sub(left, days)
    left, right = _col(node.left, run_date), _col(node.right, run_date)
    false = F.lit(False)
    comparisons = {
        "=": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    if node.op in comparisons:
        return F.coalesce(comparisons[node.op](left, right), false)
    arithmetic = {
        "+": lambda a, b: a + b,
        "-": lambda a, b: a - b,
        "*": lambda a, b: a * b,
        "/": lambda a, b: a / b,
    }
    return arithmetic[node.op](left, right)


def _call(node: Call, run_date: date) -> Column:
    fn, args = node.fn, node.args
    if fn == "has_tag":
        return F.col(tag_column(args[0].value)).isNotNull()
    if fn == "tag":
        return F.col(tag_column(args[0].value))
    if fn == "consent":
        return F.coalesce(F.col("consent").getItem(args[0].value), F.lit(False))
    cols = [_col(a, run_date) for a in args]
    if fn == "days_since":
        return F.datediff(F.lit(run_date), cols[0])
    if fn == "days_until":
        return F.datediff(cols[0], F.lit(run_date))
    simple = {
        "coalesce": F.coalesce,
        "least": F.least,
        "greatest": F.greatest,
        "lower": F.lower,
        "upper": F.upper,
        "abs": F.abs,
    }
    return simple[fn](*cols)


def _children(node: object) -> tuple:
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, Unary):
        return (node.arg,)
    if isinstance(node, In):
        return (node.arg, *node.items)
    if isinstance(node, Between):
        return (node.arg, node.low, node.high)
    if isinstance(node, IsNull):
        return (node.arg,)
    if isinstance(node, Call):
        return node.args
    return ()


def depth(tree: object) -> int:
    """Levels of nesting in ``tree``; a chain of the same ``and`` / ``or`` is one level."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        for child in _children(node):
            same_chain = (
                isinstance(node, Binary)
                and node.op in ("and", "or")
                and isinstance(child, Binary)
                and child.op == node.op
            )
            stack.append((child, level if same_chain else level + 1))
    return deepest


def uses_interval_badly(tree: object) -> bool:
    """True if a number of days appears anywhere but on the right of a date + or -."""
    stack = [(tree, False)]
    while stack:
        node, parent_ok = stack.pop()
        if isinstance(node, Interval) and not parent_ok:
            return True
        if isinstance(node, Binary):
            stack.append((node.left, False))
            stack.append((node.right, node.op in ("+", "-")))
        else:
            stack.extend((child, False) for child in _children(node))
    return False
