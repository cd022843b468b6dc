"""What each command prints with ``--json`` (``export --format json``): the reference docs/cli.md renders.

Scripts and integrations (a BI load, the nightly CRM import) read these keys; written down here, beside the
commands rather than in a hand-written page, so that ``tests/test_json_outputs.py`` can hold every command's
actual output to its entry: a key added to an output without a word here, or a key documented that an output
lacks, fails the tests.  An entry lists the top-level keys (of each item, for the commands that print a list);
what a key holds in depth is said in its description.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Key:
    """One key of an output.  ``only``: when it is there (None: always)."""

    name: str
    means: str
    only: str | None = None


@dataclass(frozen=True)
class Output:
    """A command's JSON: ``shape`` says what the whole is (an object, a list of objects), ``keys`` its keys."""

    shape: str
    keys: tuple[Key, ...]
    after: str = ""  # said under the table (another shape the command can give)

    def required(self) -> set[str]:
        return {k.name for k in self.keys if k.only is None}

    def names(self) -> set[str]:
        return {k.name for k in self.keys}


# Said once for every output, above the commands (docs/cli.md, "JSON output").
CONVENTIONS = (
    "Commands given `--json` (and `export --format json`) print one JSON document on standard output, UTF-8 "
    "(Chinese text as it is, not `\\u` escapes), and nothing else there: notes, warnings and progress go to "
    "standard error, so `crm-rules ... --json | jq` always reads valid JSON. A command that fails prints nothing on "
    "standard output (except `validate`, whose list says which files failed) and exits non-zero with `error: ...` on "
    "standard error. The same thing has the same name everywhere: `run_id` (an integer, counted per database), "
    "`policy_name` (the name of a stored run's policy, as `crm_runs.policy_name`), `policy` (the name of the policy "
    "a command grades or checks now: `apply`, `explain`, `analyze`, `diff`, `index`, `validate`, `test`), "
    "`policy_sha256` (64 hexadecimal digits, the hash of the resolved policy), `policy_file` (a policy's file), "
    "`as_of` (`YYYY-MM-DD`), `customer_id` (as the data stores it: text, or an integer), `tier`, `subgrade`, "
    "`stage`, `service_level` (the ids of the policy; null where there is none). Counts of customers, rows and "
    "actions are integers; sums of money have at most 15 significant digits, as the run computes every sum; "
    "timestamps (`started_at`, `finished_at`) are ISO 8601 in UTC; a value that is missing, or that JSON cannot "
    "hold (an infinite or NaN number), is null. New keys may be added to an output; a key is not renamed or "
    "removed without its old name being kept, and said so below."
)

_RUN = (Key("run_id", "the run"), Key("policy_name", "the run's policy"),
        Key("policy_version", "the policy's `version`, null without one"),
        Key("policy_sha256", "the hash of the policy the run graded with"), Key("as_of", "the date the run grades"))

OUTPUTS: dict[str, Output] = {
    "apply": Output("an object", (
        Key("run_id", "the run written (null for `--dry-run`)"),
        Key("policy_name", "the policy's name, as `runs` and `crm_runs` have it"),
        Key("policy_version", "the policy's `version`, null without one"),
        Key("policy", "the policy's name again: the key `apply --json` printed first, kept"),
        Key("policy_sha256", "the hash of the resolved policy"),
        Key("as_of", "the date graded"),
        Key("notes", "list of text: what the run noticed (dates, empty tables, data that stopped, metric filters "
                     "that keep no row), as `crm_runs.notes`"),
        Key("summary", "what `crm_runs.counts` holds, without its internal `explain`: `customers`, "
                       "`revenue_metric`, `total_revenue`, `tiers` (tier → `customers`, `revenue`, `revenue_share` "
                       "0..1), `subgrades`, `stages`, `service_levels` (id → customers), `tier_stage` (list of "
                       "[tier, stage, customers]), `outputs` (plugin output → value → customers, in the order of "
                       "the plugin's `values` for a grade scale, else most customers first), `actions` "
                       "(action → customers), `plugin_errors`, `overrides`"),
        Key("labels", "`tiers`, `subgrades`, `stages`, `service_levels`: id → label, as the tables show them"),
    )),
    "validate": Output("a list, one object per file given, in order", (
        Key("file", "the file, as given"),
        Key("ok", "true when the file is valid (warnings or not)"),
        Key("kind", "`policy` or `policy tests`", "ok"),
        Key("policy", "the policy's name", "ok"),
        Key("policy_sha256", "the hash of the resolved policy", "a policy that is ok"),
        Key("sha256", "the same hash: the key `validate --json` printed first, kept", "a policy that is ok"),
        Key("warnings", "list of {`file`, `line`, `col`, `path`, `message`}: rules that can never match, "
                        "numbers such as `[1,500]`", "a policy that is ok"),
        Key("cases", "the number of test cases", "a test file that is ok"),
        Key("error", "the error message", "not ok"),
        Key("hint", "how to fix it, or null", "not ok"),
        Key("problems", "list of {`file`, `line`, `col`, `path`, `message`}, every problem found (empty "
                        "when the error is not the policy's, a database's say)", "not ok"),
    )),
    "test": Output("an object", (
        Key("ok", "true when every case passed"),
        Key("passed", "cases that passed"), Key("failed", "cases that failed"),
        Key("seconds", "how long the tests took"),
        Key("files", "one object per test file: `file`, `policy`, `policy_file`, `as_of`, `passed`, `failed`, "
                     "`population`, `seconds`, `notes`, `test_notes`, `cases`"),
        Key("cases", "one object per case: `file`, `name`, `where` (file:line:col), `customer_id`, `passed`, "
                     "`expected`, `actual`, `rules`"),
        Key("failures", "the cases that failed, as in `cases`"),
        Key("coverage", "per policy: `policy`, `policy_file`, `test_files`, the rules of `tiers`, `subgrades`, "
                        "`stages`, `service_levels` and whether a case exercises each, `complete`"),
    )),
    "explain": Output("an object", (
        Key("customer_id", "the customer"), Key("customer_name", "their name, null without one"),
        Key("policy", "the policy's name"), Key("policy_sha256", "the hash of the policy explained with"),
        Key("as_of", "the date"),
        Key("source", "where the answer comes from: `path` (`stored` or `computed`), `run_id` (null when "
                      "computed), `finished_at`, `text` (the last line of the text output), `notes`, `policy` "
                      "(`sha256`, `file_sha256`, `stored_with_run`)"),
        Key("attributes", "the customer's attributes the policy maps (region, account manager, ...)"),
        Key("metrics", "list of {`name`, `label`, `value`, `internal`}"),
        Key("source_filters", "one object per source table the policy filters (`data.<source>.where`) and reads: "
                              "`source`, `table`, `where`, `rows` (the customer's rows dated on or before the as-of "
                              "date, in the data as it is now) and `dropped` (how many of them the filter drops; the "
                              "metrics read the others), both null when not counted (a table of over 500,000 rows "
                              "without an index on its customer column); an empty list without such filters"),
        Key("why", "per grade (`tier`, `subgrade`, `stage`): `because` (the sentence), `up` and `down` (the "
                   "nearest changes)"),
        Key("override", "the manual override in force (kind, tier, reason, author, expires, source), or null"),
        Key("tier", "`id`, `rule`, `method`, `rules` (each rule in order: `id`, `label`, `condition`, "
                    "`matched`, `checks`, `decided`, ...)"),
        Key("subgrade", "as `tier`, for the sub-grade"), Key("stage", "as `tier`, for the stage, with `strategy`"),
        Key("actions", "list of {`action`, `category`, `plugin`, `generator`, `reason`, `priority`, `due_date`}"),
        Key("service_level", "the service level's id, label, tier (the customer's), `tiers` (every tier the entry is "
                             "written for: one, or the list of `tier: [A, B]`), sub-grade, stage and terms, or null"),
        Key("since", "what changed since the policy's previous run: `run_id`, `as_of`, `policy_changed`, "
                     "`changes`, `metrics`, `override`, `tier_by_previous_rules`, ...; null for a first run"),
    )),
    "export": Output("with `--format json`: an object (CSV otherwise: one row per customer, the columns `run_id`, "
                     "`customer_id`, `customer_name`, `tier`, `subgrade`, `stage`, `service_level`, `tier_rule`, "
                     "`subgrade_rule`, `stage_rule`, `rule_tier`, the six `override_*` columns, then one per "
                     "stored metric in the policy's order)", (
        Key("run", "the run's row of `crm_runs`, every column, with `counts`, `plugins`, `metrics` and "
                   "`notes` as JSON values (objects and lists), not as the text the table stores"),
        Key("assignments", "one object per customer, by `customer_id`: the columns of `crm_assignments` "
                           "(`run_id`, `customer_id`, `customer_name`, `tier`, `subgrade`, `stage`, `service_level`, "
                           "`tier_rule`, `subgrade_rule`, `stage_rule`, `rule_tier`), `override` (an object or null) "
                           "and `metrics` (metric → value; true/false for the boolean ones)"),
    ), "`--format jsonl` (JSON Lines) writes one such assignment object a line instead, each also naming its run: "
       "`policy_name`, `policy_version`, `policy_sha256` and `as_of` beside `run_id`, so that an import reading line "
       "by line needs nothing else."),
    "import": Output("an object", (
        Key("rows", "rows imported"), Key("table", "the table"), Key("db", "the database"),
        Key("mode", "`create`, `replace` or `append`"),
        Key("decimal_comma_columns", "the columns read as numbers written with decimal commas",
            "some were"),
        Key("text_columns_a_run_refuses", "the columns kept as text whose every value is an amount with a currency "
            "sign or separators, or a date written year first, each `{column, holds, example}` (`holds`: `amounts` "
            "or `dates`): import them again with `--type COLUMN=float` or `=date`", "some were"),
        Key("totals_rows_left_out", "how many rows that sum the others (`合计`, `Total`, ...) `--skip-totals` left out",
            "some were"),
    )),
    "plugins": Output("a list, one object per loaded plugin", (
        Key("name", "the plugin"), Key("version", "its version"),
        Key("source", "`built-in` or the installed package"), Key("module", "its Python module"),
        Key("import_seconds", "how long its module took to import (a plugin of 1 s or more gets a note in the "
                              "table: every command that loads a policy waits for it)", "it was loaded"),
        Key("hooks", "the hooks it implements"),
        Key("contributions", "list of {`kind`, `name`}: what it registers (scorers, checks, action generators)"),
        Key("problems", "what it registered wrong (text); non-empty makes the exit code 1"),
    )),
    "actions": Output("an object", _RUN + (
        Key("actions", "every matching action (`--limit` is for the table only), most urgent first: "
                       "`due_date`, `priority`, `customer_id`, `customer_name`, `tier`, `stage`, `action`, "
                       "`category`, `owner`, `reason`, `details` (an object), `plugin`, `generator`"),
    )),
    "diff": Output("an object", (
        Key("as_of", "the date both sides are graded as of"),
        Key("old", "`source` (`policy` or `run`), `policy` (its name), `policy_sha256`, `run_id` (with "
                   "`--against-run`, else null), `as_of`, `revenue_metric`"),
        Key("new", "as `old`, for the new policy"),
        Key("customers", "`total`, `both`, `only_old`, `only_new`, `changed` (per grade and `any`)"),
        Key("tiers", "`from`, `to` (the ids), `matrix` (from → to → customers), `changed`"),
        Key("subgrades", "as `tiers`"), Key("stages", "as `tiers`"),
        Key("service_levels", "`changed`, `transitions` (list of {`from`, `to`, `customers`})"),
        Key("revenue_share", "`old_metric`, `new_metric`, `old_total`, `new_total`, `tiers` (per tier: "
                             "customers, revenue and share on each side, `change`)"),
        Key("costs", "`old`, `new` (per service level: customers, revenue, cost, discount given, account "
                     "managers; `totals`; what is `missing` or `invalid`), `change`"),
        Key("actions", "`changed`, `by_action` (gained, lost, rescheduled per action id), and with "
                       "`--customers` the customers concerned"),
        Key("notes", "list of text"),
        Key("movers", "the customers whose grades change", "--customers"),
    )),
    "analyze": Output("an object", (
        Key("policy", "the policy's name"), Key("policy_sha256", "its hash"), Key("as_of", "the date"),
        Key("customers", "customers analysed"), Key("hit_policy", "`first` or `unique`"),
        Key("rules", "every rule: `list`, `kind`, `id`, `parent`, `condition`, `default`, `matched`, `decided` "
                     "(customers), `status`"),
        Key("dead", "the rules no customer matches"), Key("shadowed", "the rules earlier rules always pre-empt"),
        Key("unique_conflicts", "under `hit_policy: unique`, the customers two rules match; else null"),
        Key("threshold_tables", "the ladders on one metric, with their `overlaps` and `gaps`"),
        Key("not_analysed", "the rules it could not analyse, with the `reason`"),
        Key("notes", "list of text"),
    )),
    "index": Output("an object", (
        Key("db", "the database"), Key("policy", "the policy's name"), Key("policy_sha256", "its hash"),
        Key("as_of", "the date"), Key("create", "whether `--create` was given"),
        Key("changed", "whether an index was created"), Key("created", "the indexes created"),
        Key("sources", "per table read: `source`, `table`, `key`, `columns`, `rows`, `existing_index`, "
                       "`proposed_index`, `proposed_sql`, `seconds_now`, `seconds_with_index`, `speedup`, "
                       "`build_seconds`, `index_bytes`, `helps`, `created`, `plan_now`, `notes`"),
    )),
    "runs": Output("a list, one object per run, by run id", _RUN[:1] + (
        Key("policy_name", "the run's policy"), Key("policy_version", "the policy's `version`, or null"),
        Key("policy_sha256", "the hash of the policy the run graded with"), Key("as_of", "the date the run grades"),
        Key("started_at", "when it started (UTC)"), Key("finished_at", "when it finished or failed (UTC)"),
        Key("status", "`succeeded` or `failed`"), Key("customers", "customers graded (null if it failed)"),
        Key("error", "why it failed, or null"), Key("policy_sha256_short", "the first 12 digits of the hash"),
        Key("overrides", "customers whose tier a manual override set"),
    )),
    "history": Output("an object", (
        Key("customer_id", "the customer"),
        Key("history", "one object per successful run that grades them, oldest as-of first: `run_id`, "
                       "`policy_name`, `policy_sha256`, `as_of`, `customer_id`, `customer_name`, `tier`, "
                       "`tier_rule`, `subgrade`, `subgrade_rule`, `stage`, `stage_rule`, `service_level`"),
        Key("pruned_runs", "policy → successful runs `prune` deleted before the first row"),
        Key("absent_runs", "policy → the later runs that do not grade the customer"),
    )),
    "changes": Output("an object", (
        Key("run_id", "the run"), Key("policy_name", "its policy"), Key("policy_sha256", "its hash"),
        Key("as_of", "its date"), Key("customers", "customers in the run"),
        Key("previous_run_id", "the run compared with, null for a first run"),
        Key("previous_as_of", "its date"), Key("previous_policy_sha256", "its policy's hash"),
        Key("policy_changed", "whether the policy's hash differs"),
        Key("source_db", "the database the run graded"), Key("previous_source_db", "the previous run's"),
        Key("previous_customers", "customers in the previous run"),
        Key("totals", "`upgrades`, `downgrades`, `unranked`, `stage_only` (the tier stayed, the stage changed: "
                      "\"changed stage only\"), `subgrade_only`, `service_level_only`, `new`, `removed` and "
                      "`unchanged` add up to the customers of both runs; `stage_changes` (the stage changed, "
                      "whatever the tier did) and `kept_tier` (the tier stayed, whatever else changed: the "
                      "report's \"kept their tier\") count some again; `same_tier` is the old name of `stage_only`, "
                      "kept for the scripts that read it (it is not `kept_tier`)"),
        Key("tiers", "the tiers, best first (then tiers only the previous run had)"),
        Key("previous_only_tiers", "tiers only the previous run had (renamed or dropped)"),
        Key("matrix", "list of {`from`, `to`, `customers`}, unchanged pairs included; `from` null for new "
                      "customers, `to` null for removed ones"),
        Key("changes", "every changed customer: `customer_id`, `customer_name`, `direction` (`upgrade`, "
                       "`downgrade`, `unranked`, `same tier` (stage only), `sub-grade`, `service level`, `new`, "
                       "`removed`), `tier_before`, `tier_after`, `subgrade_before`, `subgrade_after`, `stage_before`, "
                       "`stage_after`, `service_level_before`, `service_level_after`, `tier_rule`, `subgrade_rule`, "
                       "`stage_rule`, `tier_rule_before`"),
        Key("pruned_runs", "successful runs of the policy `prune` deleted between the two"),
        Key("made_before", "without a previous run: runs of later dates made before this one (a backfill)"),
    )),
    "prune": Output("an object", (
        Key("keep", "`--keep`"), Key("policy", "`--policy`, or null"), Key("dry_run", "whether nothing was deleted"),
        Key("deleted_runs", "the run ids deleted (or that would be)"),
        Key("policies", "per policy: `policy_name`, `kept_runs`, `deleted_runs`"),
        Key("rows", "table → rows deleted"), Key("deleted_policy_documents", "the `crm_policies` hashes deleted"),
    )),
    "report": Output("an object", (
        Key("out", "the file written"), Key("run_id", "the run"), Key("policy_name", "its policy"),
        Key("as_of", "its date"), Key("customers", "customers in the run"),
        Key("rows", "customers in the page's table"), Key("bytes", "the file's size"),
    )),
    "table export": Output("without `--table`: an object", (
        Key("policy_file", "the policy file"),
        Key("policy", "the same file: the key printed first, kept (elsewhere `policy` is a name)"),
        Key("tables", "per rule table: `table`, `title`, `yaml_path`, `own`, `rows`, `columns`, "
                      "`inherited_from`"),
    )),
    "table import": Output("an object", (
        Key("policy_file", "the policy file"),
        Key("policy", "the same file: the key printed first, kept (elsewhere `policy` is a name)"),
        Key("table", "the rule table"), Key("sheet", "the sheet read"), Key("written", "whether the file was written"),
        Key("dry_run", "`--dry-run`"), Key("changed", "whether anything changed"),
        Key("changes", "per row: `kind`, `id`, `sheet_row`, `note`, `cells` ({`column`, `old`, `new`})"),
        Key("order", "the rows moved: {`group`, `old`, `new`}"),
        Key("untouched_columns", "columns of the sheet not written back"),
        Key("policy_name", "the policy's name after the import (null when nothing was checked)"),
        Key("policy_sha256", "its hash after the import (null when nothing was checked)"),
        Key("notes", "what the imported policy may not do as meant, each a text (a tier no service level serves)"),
    )),
}


def render(command: str, cell=lambda text: text) -> list[str]:
    """The Markdown lines of a command's JSON output, or none; ``cell`` makes a text a table cell."""
    output = OUTPUTS.get(command)
    if output is None:
        return []
    lines = ["**JSON output**", "", f"{output.shape[0].upper()}{output.shape[1:]}:", "",
             "| key | holds |", "|---|---|"]
    for key in output.keys:
        when = f" (only with {key.only})" if key.only and key.only.startswith("--") else \
            f" (only when {key.only})" if key.only else ""
        lines.append(f"| `{cell(key.name)}` | {cell(key.means + when)} |")
    return lines + [""] + ([output.after, ""] if output.after else [])
