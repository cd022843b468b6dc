"""A deterministic, realistic demo CRM database.

Policies are only convincing when they run against data that looks like a real
customer base: a few customers carry most of the revenue, some are slipping
away, some pay late or not at all.  The generator is seeded so that examples,
tests and benchmarks see exactly the same rows on every machine and every day.
"""

from __future__ import annotations

import itertools
import math
import os
import random
import sqlite3
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path

from .errors import UsageError

DEMO_AS_OF = "2026-06-30"

_AS_OF = date.fromisoformat(DEMO_AS_OF).toordinal()
_WINDOW_START = date(2023, 7, 1).toordinal()  # orders cover the 3 years up to DEMO_AS_OF
_WINDOW_DAYS = _AS_OF - _WINDOW_START + 1
_FIRST_CUSTOMER = date(2015, 1, 1).toordinal()
_NEW_CUSTOMER_DAYS = 180
_CONTRACT_HISTORY_DAYS = 6 * 365

# Customers are generated and inserted in chunks so memory stays flat at 100k+.
_CHUNK_CUSTOMERS = 500

_PARETO_SHAPE = 1.16  # the classic 80/20 shape
_MAX_WEIGHT = 400.0  # keeps one outlier from owning the whole dataset
_REVENUE_PER_WEIGHT = 15_000.0

SCHEMA = """
CREATE TABLE customers (
    id TEXT PRIMARY KEY,
    name TEXT,
    region TEXT,
    industry TEXT,
    created_at TEXT,
    account_manager TEXT,
    credit_limit REAL,
    lead_source TEXT
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer_id TEXT REFERENCES customers(id),
    order_date TEXT,
    amount REAL,
    cost REAL,
    discount REAL
);
CREATE TABLE receivables (
    id INTEGER PRIMARY KEY,
    customer_id TEXT REFERENCES customers(id),
    order_id INTEGER REFERENCES orders(id),
    issue_date TEXT,
    due_date TEXT,
    amount REAL,
    paid_amount REAL,
    paid_date TEXT
);
CREATE TABLE interactions (
    id INTEGER PRIMARY KEY,
    customer_id TEXT REFERENCES customers(id),
    date TEXT,
    kind TEXT,
    note TEXT
);
CREATE TABLE contracts (
    id INTEGER PRIMARY KEY,
    customer_id TEXT REFERENCES customers(id),
    kind TEXT,
    start_date TEXT,
    end_date TEXT
);
"""

# Created after the bulk insert, which is much faster than maintaining them row by row.
INDEXES = """
CREATE INDEX idx_orders_customer_id ON orders(customer_id);
CREATE INDEX idx_receivables_customer_id ON receivables(customer_id);
CREATE INDEX idx_interactions_customer_id ON interactions(customer_id);
CREATE INDEX idx_contracts_customer_id ON contracts(customer_id);
"""

_COLUMNS = {
    "customers": 8,
    "orders": 6,
    "receivables": 8,
    "interactions": 5,
    "contracts": 5,
}

# Tuples, not dicts or sets, so that every draw happens in a fixed order.
_INDUSTRIES = (
    ("retail", 20, (0.72, 0.86)),
    ("manufacturing", 20, (0.65, 0.82)),
    ("logistics", 15, (0.78, 0.90)),
    ("hospitality", 10, (0.55, 0.75)),
    ("healthcare", 10, (0.50, 0.70)),
    ("technology", 10, (0.35, 0.60)),
    ("construction", 8, (0.75, 0.90)),
    ("wholesale", 7, (0.82, 0.93)),
)
_INDUSTRY_NAMES = tuple(name for name, _, _ in _INDUSTRIES)
_INDUSTRY_WEIGHTS = tuple(weight for _, weight, _ in _INDUSTRIES)
_COST_RATIO = {name: ratio for name, _, ratio in _INDUSTRIES}

_CHINESE_REGIONS = ("华东", "华南", "华北", "西南")
_WESTERN_REGIONS = ("North America", "Europe")
_ENGLISH_NAME_REGIONS = (("North America", 35), ("Europe", 30), ("华东", 15), ("华南", 10), ("华北", 6), ("西南", 4))

_CN_CITIES = (
    ("上海", "华东"), ("杭州", "华东"), ("南京", "华东"), ("苏州", "华东"), ("宁波", "华东"),
    ("深圳", "华南"), ("广州", "华南"), ("东莞", "华南"), ("佛山", "华南"),
    ("北京", "华北"), ("天津", "华北"), ("石家庄", "华北"),
    ("成都", "西南"), ("重庆", "西南"), ("昆明", "西南"),
)
_CN_BRANDS = (
    "华东", "恒通", "鑫源", "瑞丰", "金桥", "宏达", "中联", "永盛", "天成", "博远",
    "新元", "佳和", "盛世", "汇通", "德隆", "锦程", "安泰", "万邦", "华信", "长风",
)
_CN_TRADES = {
    "retail": ("贸易", "商贸", "百货", "零售"),
    "manufacturing": ("机械", "精密制造", "电子", "实业"),
    "logistics": ("物流", "供应链", "运输", "仓储"),
    "hospitality": ("酒店管理", "餐饮管理", "旅游"),
    "healthcare": ("医疗器械", "医药", "健康科技"),
    "technology": ("信息技术", "软件", "网络科技"),
    "construction": ("建设工程", "建材", "装饰工程"),
    "wholesale": ("批发", "进出口", "商业"),
}
_EN_BRANDS = (
    "Acme", "Northwind", "Bluewater", "Summit", "Pioneer", "Evergreen", "Harbor", "Granite",
    "Silverline", "Redwood", "Atlas", "Beacon", "Crescent", "Keystone", "Meridian", "Orion",
    "Sterling", "Vantage", "Willow", "Zenith", "Lakeside", "Ironwood", "Brightway", "Cedar",
    "Falcon", "Horizon", "Maple", "Riverside", "Sunrise", "Tristar",
)
_EN_TRADES = {
    "retail": ("Retail", "Stores", "Trading", "Outlet"),
    "manufacturing": ("Manufacturing", "Industries", "Components", "Works"),
    "logistics": ("Logistics", "Freight", "Transport", "Shipping"),
    "hospitality": ("Hotels", "Hospitality", "Catering", "Resorts"),
    "healthcare": ("Health", "Medical", "Pharma", "Care"),
    "technology": ("Technologies", "Systems", "Software", "Digital"),
    "construction": ("Builders", "Construction", "Engineering", "Materials"),
    "wholesale": ("Wholesale", "Distribution", "Supply", "Imports"),
}
_EN_SUFFIXES = {
    "North America": ("Inc.", "LLC", "Corp.", "Co."),
    "Europe": ("Ltd", "GmbH", "plc", "B.V.", "S.A."),
}
_EN_SUFFIXES_IN_CHINA = ("Ltd", "Co., Ltd.", "Inc.")

_MANAGERS_CHINA = ("张伟", "李娜", "王芳", "陈静", "James Chen")
_MANAGERS_WEST = ("Sarah Miller", "James Carter", "Laura Fischer")

# Share of customers per lifecycle among those who are not new.
_LIFECYCLES = (("stable", 54), ("growing", 20), ("declining", 15), ("lost", 11))
_NEW_SHARE = 0.10
_GROWTH_START, _GROWTH_PEAK = 0.4, 1.6  # order-rate multiplier 3 years ago and today

_TERMS = ((30, 50), (60, 30), (90, 20))
_TERMS_LARGE = ((30, 20), (60, 40), (90, 40))  # big accounts negotiate longer terms
_LARGE_WEIGHT = 20.0
_PAYERS = (("good", 72), ("slow", 18), ("bad", 10))
# Cumulative probability of: on time, late, partially paid; the rest is never paid.
_PAYMENT_ODDS = {
    "good": (0.90, 1.00, 1.00),
    "slow": (0.45, 0.97, 0.99),
    "bad": (0.25, 0.60, 0.80),
}
_DAYS_LATE = {"good": (1, 20), "slow": (5, 75), "bad": (20, 150)}
_UNINVOICED_SHARE = 0.04
_LOSS_MAKING_SHARE = 0.04

# How the customer first came to us (customers.lead_source), by size of the account:
# big accounts are mostly met at trade shows or through detailed RFQs, small ones
# often start with a bare price inquiry.  Drawn from a random stream of its own
# (seeded from the seed), so adding the column left every other value unchanged.
_LEAD_SOURCES = ("trade_show", "b2b_inquiry", "price_inquiry", "referral", "outbound")
_LEAD_SOURCE_WEIGHTS = (  # (smallest weight of the band, weights in _LEAD_SOURCES order)
    (_LARGE_WEIGHT, (40, 26, 4, 18, 12)),
    (3.0, (22, 32, 17, 16, 13)),
    (0.0, (10, 24, 36, 12, 18)),
)
# Customers from before the CRM recorded lead sources: half of them have none.
_LEAD_SOURCE_RECORDED_FROM = date(2017, 1, 1).toordinal()
_UNRECORDED_LEAD_SHARE = 0.5

_INTERACTION_KINDS = ("visit", "call", "complaint", "referral", "event")
_INTERACTION_WEIGHTS = {
    "stable": (30, 45, 6, 5, 14),
    "new": (35, 45, 4, 3, 13),
    "growing": (30, 42, 4, 10, 14),
    "declining": (25, 40, 18, 2, 15),
    "lost": (25, 40, 20, 1, 14),
}
_NOTES = {
    False: {
        "visit": ("Quarterly business review on site", "Visited warehouse, discussed volumes",
                  "Site visit with purchasing team"),
        "call": ("Follow-up call on open quote", "Called about delivery schedule",
                 "Price negotiation call", "Checked in on satisfaction"),
        "complaint": ("Late delivery complaint", "Invoice dispute", "Product quality issue reported",
                      "Complained about support response time"),
        "referral": ("Referred a new prospect", "Introduced us to a partner company"),
        "event": ("Attended annual customer event", "Joined product webinar", "Trade fair meeting"),
    },
    True: {
        "visit": ("上门拜访，季度业务回顾", "拜访采购部门，讨论采购量", "现场参观仓库"),
        "call": ("电话跟进报价", "电话沟通交货时间", "价格谈判电话", "电话回访满意度"),
        "complaint": ("投诉交货延迟", "发票金额有争议", "反馈产品质量问题", "投诉售后响应慢"),
        "referral": ("推荐了新客户", "介绍合作伙伴"),
        "event": ("参加年度客户大会", "参加产品线上研讨会", "展会洽谈"),
    },
}


@dataclass(frozen=True)
class _Customer:
    """A customer's visible row plus the hidden traits that shape its history."""

    id: str
    name: str
    region: str
    industry: str
    created: int  # date ordinal
    manager: str
    credit_limit: float
    chinese: bool
    weight: float  # Pareto-distributed size
    lifecycle: str
    last_active: int  # date ordinal after which no order is placed
    orders_per_year: float
    terms: int
    payer: str
    lead_source: str | None


def generate_demo_database(path: Path, customers: int = 2000, seed: int = 7) -> dict:
    """Write a new demo database at ``path`` and return the row count per table.

    The file appears only when complete, so an interrupted run never leaves a
    half-filled database that later looks like valid demo data.
    """
    path = Path(path)
    _check_arguments(path, customers, seed)
    tmp = _reserve_temp_file(path)
    try:
        counts = _fill(tmp, customers, random.Random(seed), random.Random(f"lead_source/{seed}"))
        _sync_to_disk(tmp)
        _publish(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return counts


def _check_arguments(path: Path, customers: int, seed: int) -> None:
    if isinstance(customers, bool) or not isinstance(customers, int) or customers < 1:
        raise UsageError(f"customers must be a positive whole number, got {customers!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UsageError(f"seed must be a whole number, got {seed!r}")
    if path.exists():
        raise UsageError(
            f"{path} already exists; the demo generator never overwrites a file",
            hint="choose another path or delete the file first",
        )
    if not path.parent.is_dir():
        raise UsageError(f"directory {path.parent} does not exist")


def _reserve_temp_file(path: Path) -> Path:
    """A sibling of ``path`` (so the final rename stays on one file system) with normal permissions."""
    attempt = 0
    while True:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{attempt}.tmp")
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return tmp
        except FileExistsError:
            attempt += 1


def _fill(db_path: Path, customers: int, rng: random.Random, lead_rng: random.Random) -> dict:
    """Generate everything in one transaction; durability is irrelevant until the rename.

    ``lead_rng`` draws only the lead sources, so that column never shifts the main stream.
    """
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = MEMORY")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("BEGIN")
        _run_script(conn, SCHEMA)
        counts = _generate_rows(conn, customers, rng, lead_rng)
        _run_script(conn, INDEXES)
        conn.execute("COMMIT")
        return counts
    finally:
        conn.close()


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run DDL statement by statement, because ``executescript`` commits first."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _generate_rows(conn: sqlite3.Connection, customers: int, rng: random.Random, lead_rng: random.Random) -> dict:
    counts = dict.fromkeys(_COLUMNS, 0)
    ids = {table: itertools.count(1) for table in _COLUMNS if table != "customers"}
    for first in range(1, customers + 1, _CHUNK_CUSTOMERS):
        rows: dict[str, list[tuple]] = {table: [] for table in _COLUMNS}
        for number in range(first, min(first + _CHUNK_CUSTOMERS, customers + 1)):
            _add_customer_history(rows, ids, _make_customer(rng, number, lead_rng), rng)
        _insert_chunk(conn, rows)
        for table, table_rows in rows.items():
            counts[table] += len(table_rows)
    return counts


def _insert_chunk(conn: sqlite3.Connection, rows: dict[str, list[tuple]]) -> None:
    for table, table_rows in rows.items():
        placeholders = ", ".join("?" * _COLUMNS[table])
        conn.executemany(f"INSERT INTO {table} VALUES ({placeholders})", table_rows)


def _add_customer_history(rows: dict, ids: dict, customer: _Customer, rng: random.Random) -> None:
    rows["customers"].append(_customer_row(customer))
    for day in _order_days(rng, customer):
        order = _order_row(rng, customer, next(ids["orders"]), day)
        rows["orders"].append(order)
        if rng.random() >= _UNINVOICED_SHARE:
            rows["receivables"].append(_receivable_row(rng, customer, next(ids["receivables"]), order, day))
    for day, kind in _interaction_events(rng, customer):
        note = rng.choice(_NOTES[customer.chinese][kind])
        rows["interactions"].append((next(ids["interactions"]), customer.id, _iso(day), kind, note))
    for kind, start, end in _contract_periods(rng, customer):
        rows["contracts"].append((next(ids["contracts"]), customer.id, kind, _iso(start), _iso(end)))


# --- customers -------------------------------------------------------------


def _make_customer(rng: random.Random, number: int, lead_rng: random.Random) -> _Customer:
    chinese = rng.random() < 0.34
    industry = rng.choices(_INDUSTRY_NAMES, _INDUSTRY_WEIGHTS)[0]
    name, region = _chinese_name(rng, industry) if chinese else _english_name(rng, industry)
    managers = _MANAGERS_CHINA if region in _CHINESE_REGIONS else _MANAGERS_WEST
    weight = min(rng.paretovariate(_PARETO_SHAPE), _MAX_WEIGHT)
    lifecycle, created, last_active = _lifecycle(rng)
    annual_revenue = weight * _REVENUE_PER_WEIGHT
    return _Customer(
        id=f"C{number:06d}",
        name=name,
        region=region,
        industry=industry,
        created=created,
        manager=rng.choice(managers),
        credit_limit=float(max(5_000, round(annual_revenue * rng.uniform(0.2, 0.5), -3))),
        chinese=chinese,
        weight=weight,
        lifecycle=lifecycle,
        last_active=last_active,
        # Big customers order more often *and* bigger, as in real B2B data.
        orders_per_year=min(2.5 + 3.0 * weight**0.6, 150.0),
        terms=_weighted(rng, _TERMS_LARGE if weight >= _LARGE_WEIGHT else _TERMS),
        payer=_weighted(rng, _PAYERS),
        lead_source=_lead_source(lead_rng, weight, created),
    )


def _lead_source(rng: random.Random, weight: float, created: int) -> str | None:
    """How the customer came to us; None for some customers from before lead sources were recorded."""
    if created < _LEAD_SOURCE_RECORDED_FROM and rng.random() < _UNRECORDED_LEAD_SHARE:
        return None
    weights = next(w for smallest, w in _LEAD_SOURCE_WEIGHTS if weight >= smallest)
    return rng.choices(_LEAD_SOURCES, weights)[0]


def _chinese_name(rng: random.Random, industry: str) -> tuple[str, str]:
    city, region = rng.choice(_CN_CITIES)
    trade = rng.choice(_CN_TRADES[industry])
    suffix = "股份有限公司" if rng.random() < 0.2 else "有限公司"
    return f"{city}{rng.choice(_CN_BRANDS)}{trade}{suffix}", region


def _english_name(rng: random.Random, industry: str) -> tuple[str, str]:
    region = _weighted(rng, _ENGLISH_NAME_REGIONS)
    suffixes = _EN_SUFFIXES.get(region, _EN_SUFFIXES_IN_CHINA)
    trade = rng.choice(_EN_TRADES[industry])
    return f"{rng.choice(_EN_BRANDS)} {trade} {rng.choice(suffixes)}", region


def _lifecycle(rng: random.Random) -> tuple[str, int, int]:
    """Return (lifecycle, created, last_active) so that the story is self-consistent."""
    if rng.random() < _NEW_SHARE:
        return "new", _AS_OF - rng.randrange(_NEW_CUSTOMER_DAYS), _AS_OF
    lifecycle = _weighted(rng, _LIFECYCLES)
    if lifecycle == "lost":
        last_order = _AS_OF - rng.randint(366, _WINDOW_DAYS - 120)
        return lifecycle, _joined_before(rng, last_order - 90), last_order
    return lifecycle, _joined_before(rng, _AS_OF - _NEW_CUSTOMER_DAYS - 20), _AS_OF


def _joined_before(rng: random.Random, latest: int) -> int:
    """Skewed towards recent years, like a growing business's customer base."""
    return round(rng.triangular(_FIRST_CUSTOMER, latest, latest))


# --- orders and receivables ---------------------------------------------------


def _intensity(lifecycle: str, age_days: float) -> float:
    """Relative order rate ``age_days`` before DEMO_AS_OF."""
    if lifecycle == "growing":
        return _GROWTH_PEAK - (_GROWTH_PEAK - _GROWTH_START) * age_days / _WINDOW_DAYS
    if lifecycle == "declining":
        if age_days > 365:
            return 1.0
        return 0.8 if age_days > 182 else 0.2
    return 1.0


def _order_days(rng: random.Random, customer: _Customer) -> list[int]:
    """Order dates as a thinned Poisson process following the lifecycle's intensity."""
    start = max(customer.created, _WINDOW_START)
    end = customer.last_active
    days = []
    if customer.created >= _WINDOW_START:  # a customer record is born with its first order
        days.append(min(customer.created + rng.randint(0, 6), end))
    if customer.lifecycle == "lost":
        days.append(end)
    peak = _GROWTH_PEAK if customer.lifecycle == "growing" else 1.0
    rate = customer.orders_per_year * peak / 365.0
    moment = float(start)
    while True:
        moment += rng.expovariate(rate)
        if moment > end:
            break
        if rng.random() * peak < _intensity(customer.lifecycle, _AS_OF - moment):
            days.append(int(moment))
    days.sort()
    return days


def _order_row(rng: random.Random, customer: _Customer, order_id: int, day: int) -> tuple:
    typical = customer.weight * _REVENUE_PER_WEIGHT / customer.orders_per_year
    amount = round(max(50.0, typical * rng.lognormvariate(0.0, 0.4)), 2)
    if rng.random() < _LOSS_MAKING_SHARE:
        cost_ratio = rng.uniform(1.01, 1.25)
    else:
        cost_ratio = rng.uniform(*_COST_RATIO[customer.industry])
    return (order_id, customer.id, _iso(day), amount, round(amount * cost_ratio, 2), _discount(rng, customer, amount))


def _discount(rng: random.Random, customer: _Customer, amount: float) -> float:
    """Bigger customers negotiate discounts more often and deeper."""
    size = min(1.0, math.log10(customer.weight) / 2.0)
    if rng.random() >= 0.25 + 0.35 * size:
        return 0.0
    rate = rng.uniform(0.02, 0.08 + 0.10 * size)
    return round(amount * rate / (1.0 - rate), 2)


def _receivable_row(rng: random.Random, customer: _Customer, receivable_id: int, order: tuple, issue: int) -> tuple:
    """Invoiced on the order date, for the order's net amount."""
    order_id, customer_id, issue_iso, amount = order[:4]
    due = issue + customer.terms
    paid_day, paid_amount = _payment(rng, customer.payer, issue, due, amount)
    paid_iso = _iso(paid_day) if paid_day is not None else None
    return (receivable_id, customer_id, order_id, issue_iso, _iso(due), amount, paid_amount, paid_iso)


def _payment(rng: random.Random, payer: str, issue: int, due: int, amount: float) -> tuple[int | None, float]:
    """(paid date, paid amount) as known on DEMO_AS_OF; a payment after that date has not happened yet."""
    on_time, late, partial = _PAYMENT_ODDS[payer]
    roll = rng.random()
    if roll < on_time:
        day, paid = issue + round(rng.uniform(0.3, 1.0) * (due - issue)), amount
    elif roll < late:
        day, paid = due + rng.randint(*_DAYS_LATE[payer]), amount
    elif roll < partial:
        day, paid = due + rng.randint(0, 90), round(amount * rng.uniform(0.2, 0.8), 2)
    else:
        return None, 0.0
    if day > _AS_OF:
        return None, 0.0
    return day, paid


# --- interactions and contracts --------------------------------------------------


def _interaction_events(rng: random.Random, customer: _Customer) -> list[tuple[int, str]]:
    start = max(customer.created, _WINDOW_START)
    end = min(_AS_OF, customer.last_active + 90)  # lost customers still complain for a while
    rate = (2.0 + 1.5 * math.log(customer.weight)) / 365.0
    weights = _INTERACTION_WEIGHTS[customer.lifecycle]
    events = []
    moment = float(start)
    while True:
        moment += rng.expovariate(rate)
        if moment > end:
            return events
        events.append((int(moment), rng.choices(_INTERACTION_KINDS, weights)[0]))


def _contract_periods(rng: random.Random, customer: _Customer) -> list[tuple[str, int, int]]:
    """Consecutive renewals of one contract kind, stopping when the customer stops or declines to renew."""
    size = min(1.0, math.log10(customer.weight) / 2.0)
    if rng.random() >= 0.45 + 0.4 * size:
        return []
    if customer.weight > _LARGE_WEIGHT and rng.random() < 0.6:
        kind = "framework"
    else:
        kind = rng.choice(("annual", "annual", "service"))
    start = max(customer.created, _AS_OF - _CONTRACT_HISTORY_DAYS) + rng.randint(0, 60)
    periods = []
    while start <= min(customer.last_active, _AS_OF):
        if kind == "framework":
            length = rng.choice((730, 1095))
        elif kind == "service":
            length = rng.choice((365, 730))
        else:
            length = 365
        end = start + length - 1
        periods.append((kind, start, end))
        if rng.random() < 0.15:
            break
        start = end + 1
    return periods


# --- helpers ---------------------------------------------------------------------


def _weighted(rng: random.Random, options: tuple) -> object:
    values = [value for value, _ in options]
    weights = [weight for _, weight in options]
    return rng.choices(values, weights)[0]


@cache
def _iso(ordinal: int) -> str:
    """Formatting dates is the hot path; there are only a few thousand distinct days."""
    return date.fromordinal(ordinal).isoformat()


def _customer_row(customer: _Customer) -> tuple:
    return (
        customer.id,
        customer.name,
        customer.region,
        customer.industry,
        _iso(customer.created),
        customer.manager,
        customer.credit_limit,
        customer.lead_source,
    )


def _sync_to_disk(db_path: Path) -> None:
    """Generation ran with synchronous=OFF, so flush before the file becomes visible."""
    with open(db_path, "rb+") as handle:
        os.fsync(handle.fileno())


def _publish(tmp: Path, path: Path) -> None:
    """Move the finished file into place without ever replacing a file that appeared meanwhile."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise UsageError(f"{path} already exists; the demo generator never overwrites a file") from None
    except OSError:  # file systems without hard links
        if path.exists():
            raise UsageError(f"{path} already exists; the demo generator never overwrites a file") from None
        os.replace(tmp, path)
        return
    tmp.unlink()
