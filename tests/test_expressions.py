"""The expression language: parsing, type checking, and SQL that matches its meaning."""

import sqlite3

import pytest

from crm_rules.engine.expr_parser import ExpressionSyntaxError, parse_expression
from crm_rules.engine.expr_sql import SqlParams, quote_identifier, to_sql
from crm_rules.engine.expr_types import ExpressionTypeError, TypeChecker

SCOPE = {"revenue": "number", "orders": "number", "region": "text", "since": "date", "vip": "bool", "score": "number"}
ROW = {"revenue": 1200.0, "orders": 3, "region": "华东", "since": "2024-02-29", "vip": 1, "score": None}


def evaluate(text: str, row=ROW, as_of="2026-06-30"):
    node = parse_expression(text)
    TypeChecker(SCOPE).infer(node)
    params = SqlParams()
    sql = to_sql(node, lambda n: f"t.{quote_identifier(n)}", params)
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (revenue, orders, region, since, vip, score)")
    conn.execute("INSERT INTO t VALUES (:revenue, :orders, :region, :since, :vip, :score)", row)
    return conn.execute(f"SELECT {sql} FROM t", {**params.values, "as_of": as_of}).fetchone()[0]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("revenue >= 1200", 1),
        ("revenue > 1200", 0),
        ("revenue >= 1_000 and orders between 1 and 3", 1),
        ("region in ['华东', '华北']", 1),
        ("region not in ('华东')", 0),
        ("not (orders < 3)", 1),
        ("orders / 2", 1.5),  # real division, not integer division
        ("orders / 0", None),  # zero divisor is unknown, not an error
        ("score > 1", None),  # missing value: unknown
        ("score is null and revenue > 0", 1),
        ("coalesce(score, 7) + 1", 8),
        ("days_between(since, as_of()) > 365", 1),
        ("days_between(since, '2024-03-01')", 1.0),
        ("since < '2025-01-01'", 1),
        ("since >= date('2025-01-01')", 0),
        ("vip = true", 1),
        ("if(vip = true, 'yes', 'no')", "yes"),
        ("round(revenue / 7, 2)", 171.43),
        ("max(orders, 10) - min(orders, 1)", 9),
        ("-orders + abs(-2)", -1),
        ("upper('abc') = 'ABC' AND length(region) = 2", 1),
        ("region = '; DROP TABLE t; --'", 0),  # literals are parameters, never SQL
    ],
)
def test_compiled_sql_means_what_it_says(text, expected):
    assert evaluate(text) == expected


@pytest.mark.parametrize(
    "text, message, col",
    [
        ("revenue >= ", "ends too early", 11),
        ("revenue > > 3", "unexpected '>'", 11),
        ("revenue ; drop", "unexpected character ';'", 9),
        ("", "empty", 1),
    ],
)
def test_syntax_errors_have_positions(text, message, col):
    with pytest.raises(ExpressionSyntaxError) as info:
        parse_expression(text)
    assert message in info.value.message
    assert info.value.col == col


@pytest.mark.parametrize(
    "text, message",
    [
        ("revenu > 5", "unknown name 'revenu'; did you mean 'revenue'?"),
        ("revenue > 'abc'", "cannot compare number 'revenue' with text"),
        ("region > 5", "cannot compare text"),
        ("since > '2024-13-01'", "is not a date"),
        ("revenue", "a condition must be true or false"),
        ("revenue + region > 1", "must be a number"),
        ("vip > true", "only be compared with = or !="),
        ("sqrt(revenue) > 1", "unknown function 'sqrt'"),
        ("coalesce(revenue) > 1", "takes 2 or more arguments"),
        ("coalesce(revenue, region) > 1", "mixes number and text"),
        ("days_between(revenue, since) > 1", "must be dates"),
    ],
)
def test_type_errors(text, message):
    node = parse_expression(text)
    with pytest.raises(ExpressionTypeError) as info:
        TypeChecker(SCOPE).check_condition(node)
    assert message in info.value.message


def test_quote_identifier_escapes_quotes():
    assert quote_identifier('a"b') == '"a""b"'
    with pytest.raises(ValueError):
        quote_identifier("a\x00b")


def test_keywords_are_case_insensitive_and_names_may_be_chinese():
    node = parse_expression("收入 > 1 AND NOT 区域 IN ['华东']")
    TypeChecker({"收入": "number", "区域": "text"}).check_condition(node)


def test_every_unknown_name_is_found_once_in_the_order_written():
    text = "revnue > 10 and ordrs > 2 or revnue < 0 and zzz(客户区域) > 1 and 客户区城 = 'x'"
    errors = TypeChecker({**SCOPE, "客户区域": "text"}).unknown_names(parse_expression(text))
    assert [(e.unknown, e.col, e.message) for e in errors] == [
        ("revnue", 1, "unknown name 'revnue'; did you mean 'revenue'?"),
        ("ordrs", 17, "unknown name 'ordrs'; did you mean 'orders'?"),
        ("客户区城", text.index("客户区城") + 1, "unknown name '客户区城'; did you mean '客户区域'?"),  # in characters
    ]
    assert TypeChecker(SCOPE).unknown_names(parse_expression("revenue > 1 and region = 'x'")) == []
