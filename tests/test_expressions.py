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
        ("since > 2024/03/01", "cannot compare date 'since' with number '2024/03/01': unquoted, 2024/03/01 is arithmetic on "
                               "numbers, not a date; write the date in quotes: '2024-03-01'"),
        ("since > '2024/3/1'", "'2024/3/1' is not a date; write '2024-03-01'"),
        ("since > '2024年3月1日'", "'2024年3月1日' is not a date; write '2024-03-01'"),
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


@pytest.mark.parametrize("text, unexpected", [
    ("revenue >= and orders >= 24", "orders"),  # a threshold deleted: 'orders' was read as 'or ders'
    ("revenue >= 1 orders >= 3", "orders"),  # an 'and' forgotten
    ("revenue >= 1 andy", "andy"),  # was read as 'revenue >= 1 and y'
    ("orders >= 1 isolated", "isolated"),
])
def test_a_keyword_is_a_whole_word_never_the_start_of_a_name(text, unexpected):
    with pytest.raises(ExpressionSyntaxError, match=f"unexpected '{unexpected}'"):
        parse_expression(text)


def test_every_unknown_name_is_found_once_in_the_order_written():
    text = "revnue > 10 and ordrs > 2 or revnue < 0 and zzz(客户区域) > 1 and 客户区城 = 'x'"
    errors = TypeChecker({**SCOPE, "客户区域": "text"}).unknown_names(parse_expression(text))
    assert [(e.unknown, e.col, e.message) for e in errors] == [
        ("revnue", 1, "unknown name 'revnue'; did you mean 'revenue'?"),
        ("ordrs", 17, "unknown name 'ordrs'; did you mean 'orders'?"),
        ("客户区城", text.index("客户区城") + 1, "unknown name '客户区城'; did you mean '客户区域'?"),  # in characters
    ]
    assert TypeChecker(SCOPE).unknown_names(parse_expression("revenue > 1 and region = 'x'")) == []


@pytest.mark.parametrize(
    "text, col, message",
    [
        ("revenue => 1000", 9, "'=>' is not an operator; write '>=' (greater than or equal)"),
        ("revenue =< 1000", 9, "'=<' is not an operator; write '<=' (less than or equal)"),
        ("revenue > 1 && orders > 2", 13, "'&&' is not an operator; write 'and'"),
        ("revenue > 1 || orders > 2", 13, "'||' is not an operator; write 'or'"),
        ("revenue > 1 & orders > 2", 13, "'&' is not an operator; write 'and'"),
        ("!vip", 1, "'!' is not an operator; write 'not' (e.g. `not vip`), or '!=' for not equal"),
        ("orders ! = 2", 8, "'! =' is not an operator; write '!=' without a space (not equal)"),
        ("revenue ＞ 1000", 9, "'＞' is a full-width character, typed with a Chinese input method; write the ASCII '>'"),
        ("revenue ＜ 1000", 9, "'＜' is a full-width character, typed with a Chinese input method; write the ASCII '<'"),
        ("region ＝ '华东'", 8, "'＝' is a full-width character, typed with a Chinese input method; write the ASCII '='"),
        ("revenue ＞＝ 1000", 9, "'＞＝' are full-width characters, typed with a Chinese input method; write the ASCII '>='"),
        ("revenue ≥ 1000", 9, "'≥' is a math sign, not an operator of the language; write '>='"),
        ("revenue ≤ 1000", 9, "'≤' is a math sign, not an operator of the language; write '<='"),
        ("region ≠ '华东'", 8, "'≠' is a math sign, not an operator of the language; write '!='"),
        ("max(revenue，orders) > 1", 12, "'，' is a full-width character, typed with a Chinese input method; write the ASCII ','"),
        ("region = ‘华东’", 10, "‘华东’ is quoted with typographic quotes, typed with a Chinese input method or made by a word "
                               "processor; write '华东'"),
        ("region = “华东”", 10, "“华东” is quoted with typographic quotes, typed with a Chinese input method or made by a word "
                               "processor; write '华东'"),
        ("region = ‘华东", 10, "'‘' is a typographic quote, typed with a Chinese input method or made by a word processor; "
                              "write the ASCII quote ' instead"),
        # Chinese text before the mistake: the column counts characters
        ("region in ['华东', '华南'] and revenue ＞ 1", 36, "'＞' is a full-width character"),
        # shares written as percentages, as a spreadsheet shows them
        ("margin_12m >= 30%", 15, "'30%' is not a number of the language: shares are fractions, write 0.3 for 30%"),
        ("discount < 12.5 %", 12, "'12.5 %' is not a number of the language: shares are fractions, write 0.125 for 12.5 %"),
        ("share >= 100%", 10, "'100%' is not a number of the language: shares are fractions, write 1 for 100%"),
        ("margin_12m >= 30％", 15, "'30％' is not a number of the language: shares are fractions, write 0.3 for 30％"),
        ("margin_12m >= ０．３", 16, "'．' is a full-width character, typed with a Chinese input method; write the ASCII '.'"),
        # numbers and dates as a report writes them
        ("revenue >= 100,000", 12, "'100,000' is not a number of the language; write 100000 or 100_000, without thousands separators"),
        ("revenue >= １０,０００", 12, "'１０,０００' is not a number of the language; write 10000 or 10_000"),
        ("revenue >= 10万", 12, "'10万' is not a number of the language; write 100000 (万 = 10,000)"),
        ("revenue >= 10万元", 12, "'10万元' is not a number of the language; write 100000 (万 = 10,000)"),
        ("revenue >= 1.5 亿", 12, "'1.5 亿' is not a number of the language; write 150000000 (亿 = 100,000,000)"),
        ("revenue >= 100k", 12, "'100k' is not a number of the language; write 100000 (k = 1,000)"),
        ("revenue >= 100000元", 12, "'100000元' is not a number of the language; write the number alone, without '元': 100000"),
        ("since < 2020年1月1日", 9, "'2020年1月1日' is not a date of the language; write '2020-01-01' (in quotes)"),
        ("revenue > 1 且 orders > 2", 13, "'且' is not an operator of the language; write 'and'"),
        ("revenue > 1 或者 orders > 2", 13, "'或者' is not an operator of the language; write 'or'"),
        # in a list or a call a ',' separates: 1,000 would be the numbers 1 and 0
        ("orders in [1,000, 5,000]", 12, "'1,000' is written with thousands separators, but ',' separates the items of a list "
                                         "(and the arguments of a function), so this reads as 2 numbers; write 1000 or 1_000"),
        ("orders in [1,000,000]", 12, "'1,000,000' is written with thousands separators"),
        ("orders in [１,０００]", 12, "'１,０００' is written with thousands separators, but ',' separates the items of a list (and the arguments of a function), so this reads as 2 numbers; write 1000 or 1_000"),
        ("max(revenue, 2,000) > 1", 14, "'2,000' is written with thousands separators"),
        # English multipliers: the language's numbers are plain
        ("revenue_12m >= 1.2 million", 16, "'1.2 million' is not a number of the language; write 1_200_000 "
                                           "(million = 1,000,000; '_' groups the digits)"),
        ("revenue_12m >= 1.2m", 16, "'1.2m' is not a number of the language; write 1_200_000 (m = 1,000,000"),
        ("revenue_12m >= 1.2M and orders > 2", 16, "'1.2M' is not a number of the language; write 1_200_000"),
        ("revenue_12m >= 2bn", 16, "'2bn' is not a number of the language; write 2_000_000_000 (bn = 1,000,000,000"),
        ("revenue_12m >= 3 thousand", 16, "'3 thousand' is not a number of the language; write 3000 (thousand = 1,000)"),
        # SQL's text search
        ("name like '%徐记%'", 6, "'like' is not an operator of the language: it has no text search (no like, no % or * "
                                "wildcards); compare with the whole values instead, e.g. name in ['...', '...']"),
        ("revenue_12m > 1 and region not like '华%'", 32, "'like' is not an operator of the language: it has no text "
                                                         "search (no like, no % or * wildcards); compare with the whole "
                                                         "values instead, e.g. region not in ['...', '...']"),
        ("name GLOB '*徐记*'", 6, "'GLOB' is not an operator of the language: it has no text search"),
    ],
)
def test_common_mistakes_are_named_with_their_fix(text, col, message):
    with pytest.raises(ExpressionSyntaxError) as info:
        parse_expression(text)
    assert message in info.value.message
    assert (info.value.line, info.value.col) == (1, col)
    assert text[col - 1] == message[1] or text[col - 1] == message[0]  # the column is the mistake's first character


@pytest.mark.parametrize("text", ["if margin_12m >= 0.3", "  IF margin_12m >= 0.3"])
def test_a_condition_written_with_if_says_to_leave_it_out(text):
    with pytest.raises(ExpressionSyntaxError) as info:
        parse_expression(text)
    assert info.value.message.startswith("a condition is written without 'if' (the key it stands under already means "
                                         "'if'): write margin_12m >= 0.3; if(condition, then, else) is the function")
    assert (info.value.line, info.value.col) == (1, text.lower().index("if") + 1)


def test_if_then_else_written_out_says_to_use_the_function():
    with pytest.raises(ExpressionSyntaxError) as info:
        parse_expression("if margin_12m >= 0.3 then 1 else 0")
    assert info.value.message == ("'if ... then ... else' is written as the function if(condition, then, else): write "
                                  "if(margin_12m >= 0.3, 1, 0)")
    assert (info.value.line, info.value.col) == (1, 1)


def test_the_if_function_and_names_like_the_mistakes_still_parse():
    assert parse_expression("if(margin_12m >= 0.3, 1, 0) = 1") is not None
    assert parse_expression("if (margin_12m >= 0.3, 1, 0) = 1") is not None
    assert parse_expression("likes > 1 and m >= 2 and million < 3") is not None


def test_a_list_of_numbers_without_spaces_is_still_a_list():
    # only digits after a comma that start with 0 are taken for thousands: [1,500] may be 1 and 500
    assert [item.value for item in parse_expression("orders in [1,2,3]").items] == [1, 2, 3]
    assert [item.value for item in parse_expression("orders in [1,500, 0]").items] == [1, 500, 0]


def test_typographic_quotes_around_the_whole_condition_are_to_be_removed_not_made_ascii():
    # ASCII quotes there would make the condition a text, which is no condition
    with pytest.raises(ExpressionSyntaxError) as info:
        parse_expression("“revenue >= 100”")
    assert info.value.message == ("the whole expression is in typographic quotes, typed with a Chinese input method or made by "
                                  "a word processor; remove them (or quote the YAML value with ASCII double quotes): revenue >= 100")


def test_full_width_digits_are_the_number_they_show():
    # '１０００' is read by the parser as 1000, the number it shows: no wrong value to catch
    assert parse_expression("revenue >= １０００").right.value == 1000


def test_every_mistake_of_a_text_is_named_at_its_place():
    with pytest.raises(ExpressionSyntaxError) as info:
        parse_expression("（revenue ＞ 1）and\nregion = ‘华东’ && vip")
    assert [(p.line, p.col, p.message.split(" ")[0]) for p in info.value.problems] == [
        (1, 1, "'（'"), (1, 10, "'＞'"), (1, 13, "'）'"), (2, 10, "‘华东’"), (2, 15, "'&&'")]


def test_mistakes_inside_quoted_text_are_text_and_a_text_that_parses_is_never_searched():
    assert parse_expression("region = '＞ && ！' or region != \"=>\" or region <> '‘'").op == "or"
    with pytest.raises(ExpressionSyntaxError) as info:  # the parser's own error stands when there is no known mistake
        parse_expression("region = '&&' and revenue >= >= 1")
    assert (info.value.message, info.value.col, info.value.others) == ("unexpected '>='", 30, ())


def test_an_error_before_the_first_mistake_is_kept():
    with pytest.raises(ExpressionSyntaxError) as info:
        parse_expression("revenue >= >= 1 and orders ＞ 2")
    assert [(p.col, p.message[:14]) for p in info.value.problems] == [(12, "unexpected '>="), (28, "'＞' is a full-")]


def test_double_equals_is_accepted():
    assert evaluate("orders == 3") == 1


@pytest.mark.parametrize(
    "text, message",
    [
        ("region = 华东", "unknown name '华东'; if it is a text value, quote it: region = '华东'"),
        ("华东 != region", "unknown name '华东'; if it is a text value, quote it: '华东' != region"),
        ("region in [华东, '华南', 华北]", "unknown name '华东'; if it is a text value, quote it: region in ['华东', '华南', '华北']"),
        ("lower(region) = east", "unknown name 'east'; if it is a text value, quote it: lower(region) = 'east'"),
        ("region = revenu", "unknown name 'revenu'; did you mean 'revenue'? If it is a text value, quote it: region = 'revenu'"),
        ("revenue = 华东", "unknown name '华东'"),  # a number: no quotes to suggest
        ("华东 = 'x'", "unknown name '华东'"),  # beside a literal the word is more likely a misspelt name
    ],
)
def test_unquoted_text_is_named_with_the_quotes_it_needs(text, message):
    (error, *_) = TypeChecker(SCOPE).unknown_names(parse_expression(text))
    assert error.message == message


def test_nested_conditions_are_type_checked_once_per_node(monkeypatch):
    """Each 'and'/'or' inferred its items' types twice (once for the `or 'retail'` check, once for the bool check),
    so a condition nested n levels deep took 2**n checks."""
    text = "x > 1"
    for i in range(16):
        text = f"(x > {i} and ({text}))" if i % 2 else f"(x < {i} or {text})"
    node = parse_expression(text)
    calls = []
    infer = TypeChecker.infer
    monkeypatch.setattr(TypeChecker, "infer", lambda self, n: calls.append(n) or infer(self, n))
    TypeChecker({"x": "number"}).check_condition(node)
    assert len(calls) == len({id(n) for n in calls})


def test_a_date_literal_of_year_zero_is_refused_not_a_crash():
    with pytest.raises(ExpressionTypeError, match="'0000-02-30' is not a date"):
        TypeChecker({"d": "date"}).check_condition(parse_expression("d > '0000-02-30'"))
