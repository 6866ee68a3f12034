#!/usr/bin/env python3
"""campaign-elt benchmark: the whole `campaign-elt run` against the pure-SQL baseline and
PostgreSQL's own COPY of typed rows, side by side on the same server, several rounds.

Usage:
  bench/bench.py [--lines 4000000] [--rounds 3] [--baseline PATH] [--input FILE]   full comparison
  bench/bench.py --no-build --binary NEW --compare-binary OLD [--lines N]         two builds, one run
  bench/bench.py parse-only [--lines N]                              the Rust side alone
  bench/bench.py nightly [--days 30] [--events-per-hour 5500]        a month, then one new day
  bench/bench.py memory [--sizes 200000,2000000,20000000]             peak RSS by input size

--binary PATH (default target/release/campaign-elt) is the build measured; `cargo build --release`
runs first unless --no-build is given or --binary names another file. --compare-binary PATH (full
comparison only) runs a second build in every round on the same input and the same fresh-database
procedure, alternating which goes first, and prints medians, spread (min-max) and new/old ratios.

The full comparison also checks that the baseline and campaign-elt give the same reports: after
each run it compares reports.page_loads, reports.clicks, reports.unique_user_clicks and
reports.click_through_rate of the baseline's database with the loader's, row for row (counts as
integers, click_through_rate exactly as numeric: 0.50 = 0.5, no rounding), prints MATCH or DIFF
with the first differing rows, and exits 1 after the figures on any DIFF. Lines the baseline's
psql \\copy into jsonb cannot ingest (see baseline_refuses) are removed from its copy of the input
before the timed rounds; how many is printed. The baseline runs with PGTZ=UTC.

Connects with the libpq variables (default PGHOST=127.0.0.1 PGUSER=postgres); creates and drops
databases named campaign_elt_bench_*. Data goes to bench-data/ (generated with
`campaign-elt generate`, reused when present). Reports medians and ratios, never asserts on
times: people judge the numbers.
"""
import argparse
import collections
import json
import os
import re
import statistics
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BIN = ROOT / "target" / "release" / "campaign-elt"
DATA = ROOT / "bench-data"
DEFAULT_BASELINE = ROOT / "bench" / "pure_sql_baseline.sh"
ENV = dict(os.environ)
ENV.setdefault("PGHOST", "127.0.0.1")
ENV.setdefault("PGUSER", "postgres")
ENV.pop("DATABASE_URL", None)
# The baseline reads fired_at with to_timestamp(), which uses the session's TimeZone; the loader
# reads naive timestamps as UTC. Only its own process gets PGTZ=UTC, so both read the same instants.
BASELINE_ENV = dict(ENV, PGTZ="UTC")

# The four report relations and their value columns, after (customer_id, hour).
REPORTS = {
    "page_loads": ["page_loads"],
    "clicks": ["clicks"],
    "unique_user_clicks": ["unique_user_clicks"],
    "click_through_rate": ["page_loads", "related_clicks", "click_through_rate"],
}
SHOWN_DIFFS = 5


def sh(args, **kwargs):
    return subprocess.run(args, env=ENV, check=True, **kwargs)


def psql(db, sql):
    return sh(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db, "-At", "-c", sql],
              capture_output=True, text=True).stdout.strip()


def fresh_database(name):
    psql("postgres", f"drop database if exists {name} with (force)")
    psql("postgres", f"create database {name}")


def drop_database(name):
    psql("postgres", f"drop database if exists {name} with (force)")


def url(database):
    return f"postgresql://{ENV['PGUSER']}@{ENV['PGHOST']}/{database}"


def timed(args, stdin=None, stdout=subprocess.DEVNULL, env=None):
    """Runs a command; returns (seconds, peak RSS in MiB of the process itself, stdout)."""
    start = time.perf_counter()
    process = subprocess.Popen(args, env=env or ENV, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    output = process.stdout.read() if process.stdout else b""
    errors = process.stderr.read().decode(errors="replace")
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"{' '.join(map(str, args))} exited {code}:\n{errors}")
    return seconds, usage.ru_maxrss / 1024, output


def build(args):
    """cargo build, unless --no-build or --binary is not the build's own output."""
    if not args.no_build and Path(args.binary).resolve() == DEFAULT_BIN:
        sh(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT)
    for binary in filter(None, [args.binary, args.compare_binary]):
        if not os.access(binary, os.X_OK):
            sys.exit(f"{binary}: not an executable file")


def generated(binary, lines, name=None, extra=(), seed=42):
    DATA.mkdir(exist_ok=True)
    path = DATA / (name or f"clean_{lines}.jsonl")
    if not path.exists():
        print(f"generating {path.name} ({lines} lines)...", file=sys.stderr)
        sh([binary, "generate", "--lines", str(lines), "--seed", str(seed), *extra, "--output", path])
    return path


# What the baseline's SQL casts with to_timestamp() once its regular expression matched.
BASELINE_FIRED_AT = re.compile(
    r"(0[1-9]|1[0-2])/(0[1-9]|[12][0-9]|3[01])/([0-9]{4}), ([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]")


def real_date(month, day, year):
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return day <= [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]


def jsonb_takes_strings(value):
    """False when a string (key or value) holds U+0000 or a lone surrogate: jsonb refuses both."""
    if isinstance(value, str):
        if "\0" in value:
            return False
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(jsonb_takes_strings(key) and jsonb_takes_strings(item) for key, item in value.items())
    if isinstance(value, list):
        return all(jsonb_takes_strings(item) for item in value)
    return True


class Refused(ValueError):
    """A JSON text Python reads but jsonb does not; args[0] is the reason."""


def refuse_constant(name):
    raise Refused("invalid_json")  # NaN, Infinity, -Infinity


def jsonb_number(text):
    """A JSON number as jsonb's numeric takes it: at most 131072 digits before the decimal point
    and 16383 after (as written: 0e-20000 overflows too), else 'value overflows numeric format'."""
    number = Decimal(text)
    if -number.as_tuple().exponent > 16383 or (number and number.adjusted() >= 131072):
        raise Refused("numeric_overflow")
    return number


# Only a number with a 4-digit exponent or a run of 1000 digits can overflow numeric (or Python's
# 4300-digit int limit): lines without either skip the slow check of every number.
HUGE_EXPONENT = re.compile(r"[eE][+-]?[0-9]{4}")
PLAIN = json.JSONDecoder(parse_constant=refuse_constant)
CHECKED = json.JSONDecoder(parse_constant=refuse_constant, parse_int=jsonb_number, parse_float=jsonb_number)


def baseline_refuses(line):
    """Why the baseline would fail on this line (without its \\n and one trailing \\r), or None.

    The baseline's \\copy (CSV format into jsonb) aborts on the first line that is not valid UTF-8,
    holds a NUL byte or a carriage return, is not a JSON text, holds a string with \\u0000 or a lone
    surrogate, or a number numeric cannot hold; Python's json takes NaN and Infinity, refused here.
    A line `\\.` is worse: it silently ends the copy. Its SQL then aborts on a fired_at that its
    regular expression lets through but that is no real date (02/30/2022), whatever the other
    fields hold. Removed too: blank lines (one of spaces aborts; an empty one would be a NULL row)
    and JSON nested deeper than Python's json reads (jsonb takes some thousand levels)."""
    if not line.strip():
        return "blank"
    if line == b"\\.":
        return "end_of_copy_marker"
    if b"\0" in line:
        return "nul_byte"
    if b"\r" in line:
        return "carriage_return"
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_utf8"
    try:
        decoder = CHECKED if len(text) >= 1000 or HUGE_EXPONENT.search(text) else PLAIN
        value = decoder.decode(text)
    except Refused as refused:
        return refused.args[0]
    except RecursionError:
        return "nested_too_deep"
    except ValueError:
        return "invalid_json"
    if "\\u" in text and not jsonb_takes_strings(value):
        return "nul_or_lone_surrogate_escape"
    fired_at = value.get("fired_at") if isinstance(value, dict) else None
    match = BASELINE_FIRED_AT.fullmatch(fired_at) if isinstance(fired_at, str) else None
    if match and not real_date(int(match[1]), int(match[2]), int(match[3])):
        return "impossible_fired_at_date"
    return None


def baseline_input(path):
    """The input for the baseline: PATH itself, or a copy without the lines it cannot ingest and
    without trailing \\r (the loader drops one too), written before and outside the timed rounds.
    Returns (path, lines read, lines removed by reason, lines whose \\r was dropped)."""
    removed, skipped, dropped, lines = collections.Counter(), set(), 0, 0
    with open(path, "rb") as source:
        for number, line in enumerate(source):
            lines += 1
            line = line.removesuffix(b"\n")
            reason = baseline_refuses(line.removesuffix(b"\r"))
            if reason:
                removed[reason] += 1
                skipped.add(number)
            elif line.endswith(b"\r"):
                dropped += 1
    if not skipped and not dropped:
        return path, lines, removed, 0
    copy = DATA / f"{path.stem}.baseline.jsonl"
    with open(path, "rb") as source, open(copy, "wb") as target:
        for number, line in enumerate(source):
            if number not in skipped:
                target.write(line.removesuffix(b"\n").removesuffix(b"\r") + b"\n")
    return copy, lines, removed, dropped


def report_rows(db, relation):
    """reports.RELATION as a sorted list of (customer_id, hour in UTC, values...); counts as int,
    the rate as Decimal (compared exactly: Decimal('0.50') == Decimal('0.5')), NULL as None."""
    columns = REPORTS[relation]
    output = sh(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db, "-At", "-F", "\t", "-P", "null=NULL",
                 "-c", f"select customer_id, to_char(hour at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS'), "
                       f"{', '.join(columns)} from reports.{relation} order by 1, 2"],
                capture_output=True, text=True).stdout
    rows = []
    for line in output.splitlines():
        customer_id, hour, *values = line.split("\t")
        typed = [None if value == "NULL" else Decimal(value) if column == "click_through_rate" else int(value)
                 for column, value in zip(columns, values)]
        rows.append((int(customer_id), hour, *typed))
    return rows


def compare_reports(baseline_db, loader_db):
    """{relation: (baseline rows, loader rows, the first differing keys with both sides' rows)}."""
    result = {}
    for relation in REPORTS:
        expected, actual = report_rows(baseline_db, relation), report_rows(loader_db, relation)
        only_expected = collections.Counter(expected) - collections.Counter(actual)
        only_actual = collections.Counter(actual) - collections.Counter(expected)
        keys = sorted({row[:2] for row in only_expected} | {row[:2] for row in only_actual})
        differing = [(key, [row for row in expected if row[:2] == key], [row for row in actual if row[:2] == key])
                     for key in keys[:SHOWN_DIFFS]]
        result[relation] = (len(expected), len(actual), len(keys), differing)
    return result


def verdict(comparison):
    """MATCH when no relation has a differing key."""
    return "MATCH" if all(keys == 0 for _, _, keys, _ in comparison.values()) else "DIFF"


def spread(values):
    return f"[{min(values):.2f}-{max(values):.2f}]"


def row(label, values, lines, size, rss=None, ratio=None):
    """One line of figures from the rounds' values: median, spread (min-max), rates."""
    seconds = statistics.median(values)
    rss_text = f"{rss:8.1f}" if rss is not None else "       -"
    ratio_text = f"{ratio:6.2f}x" if ratio is not None else "      -"
    print(f"  {label:<40} {seconds:8.2f} s {spread(values):>13} {lines / seconds:12,.0f} lines/s "
          f"{size / seconds / 1e6:8.1f} MB/s {rss_text} MiB {ratio_text}")


def loader_round(loader, path, window, typed_csv=None):
    """One `campaign-elt run` into a fresh database, its reports compared with the baseline's (the
    first DIFF is kept, else the last MATCH); writes TYPED_CSV from its events when missing."""
    fresh_database("campaign_elt_bench_run")
    seconds, rss, output = timed([loader["binary"], "run", "--json", "--quiet", "--click-through-window-seconds",
                                  str(window), "--database-url", url("campaign_elt_bench_run"), path],
                                 stdout=subprocess.PIPE)
    summary = json.loads(output)
    results = loader["results"]
    results["run"].append(seconds)
    results["rss"].append(rss)
    results["load"].append(summary["step_seconds"]["load"])
    results["refresh"].append(summary["step_seconds"]["refresh"])
    comparison = compare_reports("campaign_elt_bench_baseline", "campaign_elt_bench_run")
    if loader["comparison"] is None or verdict(loader["comparison"]) == "MATCH":
        loader["comparison"] = comparison
    if typed_csv and not typed_csv.exists():
        # The reference rows keep the event id as text, as the issue that set the target
        # measured them: the typed COPY is the same however campaign-elt stores ids.
        psql("campaign_elt_bench_run",
             f"\\copy (select elt.event_id(event_id_uuid, event_id_text), event_type, customer_id, "
             f"user_id, fired_at, load_id, line_number from elt.events) to '{typed_csv}' csv")
    drop_database("campaign_elt_bench_run")
    return f"{loader['label']} run {seconds:.2f} s (load {results['load'][-1]:.2f} s, reports {verdict(comparison)})"


def full(args):
    build(args)
    DATA.mkdir(exist_ok=True)
    path = Path(args.input) if args.input else generated(args.binary, args.lines)
    size = path.stat().st_size
    typed_csv = DATA / f"typed_{path.stem}.csv"
    start = time.perf_counter()
    baseline_path, lines, removed, dropped = baseline_input(path)
    print(f"baseline input (checked in {time.perf_counter() - start:.1f} s, not timed): "
          f"removed {sum(removed.values()):,} of {lines:,} lines it cannot ingest"
          + "".join(f", {reason} {count:,}" for reason, count in sorted(removed.items()))
          + (f"; dropped the trailing CR of {dropped:,}" if dropped else "")
          + (f"; reads {baseline_path.name}" if baseline_path != path else ""), file=sys.stderr)
    builds = [{"label": label, "binary": binary, "comparison": None,
               "results": {"run": [], "load": [], "refresh": [], "rss": []}}
              for label, binary in [("new", args.binary), ("old", args.compare_binary)] if binary]
    results = {"baseline": [], "typed_copy": []}
    for round_number in range(1, args.rounds + 1):
        seconds, _, _ = timed(["bash", args.baseline, str(baseline_path), "campaign_elt_bench_baseline",
                               str(args.window)], env=BASELINE_ENV)
        results["baseline"].append(seconds)
        # Every build on the same input, each into a fresh database; which goes first alternates.
        texts = [loader_round(each, path, args.window, typed_csv if each is builds[0] else None)
                 for each in (builds if round_number % 2 else builds[::-1])]
        drop_database("campaign_elt_bench_baseline")

        fresh_database("campaign_elt_bench_copy")
        psql("campaign_elt_bench_copy",
             "create table events (event_id text, event_type text, customer_id bigint, user_id bigint, "
             "fired_at timestamptz, load_id bigint, line_number bigint)")
        seconds, _, _ = timed(["psql", "-X", "-q", "-d", "campaign_elt_bench_copy", "-c",
                               f"\\copy events from '{typed_csv}' csv"])
        results["typed_copy"].append(seconds)
        drop_database("campaign_elt_bench_copy")
        print(f"round {round_number}: baseline {results['baseline'][-1]:.2f} s, {', '.join(texts)}, "
              f"typed COPY {results['typed_copy'][-1]:.2f} s", file=sys.stderr)

    baseline = statistics.median(results["baseline"])
    print(f"\n{lines:,} lines, {size / 1e6:.0f} MB, {args.rounds} rounds (medians, [min-max]), "
          f"ratios to the baseline's whole run (its input without {sum(removed.values()):,} lines):")
    row("pure-SQL baseline (whole)", results["baseline"], lines, size, ratio=1.0)
    for each in builds:
        run = each["results"]
        name = f"campaign-elt run{', ' + each['label'] if len(builds) > 1 else ''} (whole process)"
        row(name, run["run"], lines, size, statistics.median(run["rss"]), statistics.median(run["run"]) / baseline)
        row("  of which load (lines -> events)", run["load"], lines, size)
        row("  of which refresh (4 reports)", run["refresh"], lines, size)
    row("typed COPY into a logged table", results["typed_copy"], lines, size)
    new = {key: statistics.median(values) for key, values in builds[0]["results"].items()}
    print(f"\n  run / baseline      {new['run'] / baseline:.2f}x  (target <= 0.40, stretch 0.25)")
    print(f"  load / typed COPY   {new['load'] / statistics.median(results['typed_copy']):.2f}x  "
          f"(target <= 2.0, stretch 1.5)")
    print(f"  loader peak RSS     {new['rss']:.1f} MiB (target < 64)")
    if len(builds) > 1:
        print_builds(*builds)
    print_comparisons(builds)
    if any(verdict(each["comparison"]) == "DIFF" for each in builds):
        sys.exit("\nDIFF: the baseline and campaign-elt disagree on the reports (first differing rows above)")


def print_builds(new, old):
    """new against old: median [min-max] of each and the ratio of the medians."""
    print(f"\nnew against old, {len(new['results']['run'])} rounds each, alternating which ran first:")
    print(f"  new = {new['binary']}\n  old = {old['binary']}")
    print(f"  {'':<18} {'new median':>10} {'[min-max]':>13} {'old median':>10} {'[min-max]':>13} {'new/old':>8}")
    for key, label in [("run", "run (s)"), ("load", "load (s)"), ("refresh", "refresh (s)"), ("rss", "peak RSS (MiB)")]:
        new_values, old_values = new["results"][key], old["results"][key]
        ratio = statistics.median(new_values) / statistics.median(old_values)
        print(f"  {label:<18} {statistics.median(new_values):>10.2f} {spread(new_values):>13} "
              f"{statistics.median(old_values):>10.2f} {spread(old_values):>13} {ratio:>7.2f}x")


def print_comparisons(builds):
    print("\nreports, the baseline's against campaign-elt's, row for row in every round (counts as integers, "
          "click_through_rate exactly as numeric, no rounding):")
    print(f"  {'relation':<20} {'baseline rows':>14}" + "".join(f"  {each['label']:<28}" for each in builds))
    for relation in REPORTS:
        cells = ""
        for each in builds:
            expected, actual, keys, _ = each["comparison"][relation]
            cells += f"  {('MATCH' if keys == 0 else f'DIFF ({keys:,} keys)') + f', {actual:,} rows':<28}"
        print(f"  {relation:<20} {expected:>14,}{cells}")
    for each in builds:
        for relation, (_, _, keys, differing) in each["comparison"].items():
            if keys:
                print(f"\n  DIFF {relation} ({each['label']}): {keys:,} keys differ; the first {len(differing)}, "
                      f"by key, values ({', '.join(REPORTS[relation])}):")
                for (customer_id, hour), expected, actual in differing:
                    print(f"    customer {customer_id} hour {hour}: baseline {shown(expected)}, "
                          f"campaign-elt {shown(actual)}")


def shown(rows):
    """The values of one key's rows, as psql would print them; '-' for no row."""
    return " | ".join(", ".join("NULL" if value is None else f"{value:f}" if isinstance(value, Decimal) else str(value)
                                for value in row[2:]) for row in rows) or "-"


def parse_only(args):
    build(args)
    path = generated(args.binary, args.lines)
    size = path.stat().st_size
    seconds, rss, _ = timed([args.binary, "check", "--quiet", path])
    print(f"parse-only (campaign-elt check, no database), {args.lines:,} lines, {size / 1e6:.0f} MB:")
    row("read + classify", [seconds], args.lines, size, rss)


def nightly(args):
    build(args)
    binary, hour_lines = args.binary, args.events_per_hour
    history = generated(binary, hour_lines * 24 * args.days, f"history_{args.days}d_{hour_lines}.jsonl",
                        ["--events-per-hour", str(hour_lines), "--start", "2022-01-01T00:00:00"])
    day = generated(binary, hour_lines * 24, f"day_after_{args.days}d_{hour_lines}.jsonl",
                    ["--events-per-hour", str(hour_lines), "--start",
                     time.strftime("%Y-%m-%dT00:00:00", time.gmtime(1640995200 + 86400 * args.days))],
                    seed=43)  # another seed: other event ids than the history's
    database = url("campaign_elt_bench_nightly")
    fresh_database("campaign_elt_bench_nightly")
    history_seconds, _, _ = timed([binary, "run", "--quiet", "--database-url", database, history])
    day_seconds, rss, output = timed([binary, "run", "--json", "--quiet", "--database-url", database, day],
                                     stdout=subprocess.PIPE)
    summary = json.loads(output)
    drop_database("campaign_elt_bench_nightly")
    fresh_database("campaign_elt_bench_nightly")
    empty_seconds, _, _ = timed([binary, "run", "--quiet", "--database-url", database, day])
    drop_database("campaign_elt_bench_nightly")
    print(f"nightly: {args.days} days of history ({hour_lines * 24 * args.days:,} lines), then one new day "
          f"({hour_lines * 24:,} lines):")
    print(f"  history load                 {history_seconds:8.2f} s")
    print(f"  the new day after the month  {day_seconds:8.2f} s  (refresh recomputed "
          f"{summary['refresh']['recomputed_keys']} keys, read {summary['refresh']['events_read']} events), "
          f"peak RSS {rss:.1f} MiB")
    print(f"  the same day, empty database {empty_seconds:8.2f} s")
    print(f"  increment / same day alone   {day_seconds / empty_seconds:.2f}x  (1.0 = proportional to the day)")


def memory(args):
    build(args)
    sizes = [int(size) for size in args.sizes.split(",")]
    database = url("campaign_elt_bench_memory")
    print("loader peak RSS by input size (`campaign-elt run FILE` into an empty database):")
    print(f"  {'lines':>12} {'MB':>8} {'seconds':>9} {'peak RSS':>12}")
    for lines in sizes:
        path = generated(args.binary, lines, f"memory_{lines}.jsonl",
                         ["--dirt-rate", "0.01", "--exact-duplicate-rate", "0.01"])
        fresh_database("campaign_elt_bench_memory")
        seconds, rss, _ = timed([args.binary, "run", "--quiet", "--database-url", database, path])
        drop_database("campaign_elt_bench_memory")
        print(f"  {lines:>12,} {path.stat().st_size / 1e6:>8,.0f} {seconds:>8.1f}s {rss:>8.1f} MiB")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", default="full", choices=["full", "parse-only", "nightly", "memory"])
    parser.add_argument("--binary", default=str(DEFAULT_BIN), help="the build to measure")
    parser.add_argument("--compare-binary", help="full comparison: a second build to run in every round")
    parser.add_argument("--no-build", action="store_true", help="do not run cargo build")
    parser.add_argument("--lines", type=int, default=4_000_000)
    parser.add_argument("--input", help="full comparison: this JSON-lines file instead of generated data")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=int, default=300)
    parser.add_argument("--baseline", default=str(DEFAULT_BASELINE))
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--events-per-hour", type=int, default=5500)
    parser.add_argument("--sizes", default="200000,2000000,20000000")
    args = parser.parse_args()
    if args.mode != "full" and (args.compare_binary or args.input):
        parser.error("--compare-binary and --input belong to the full comparison")
    {"full": full, "parse-only": parse_only, "nightly": nightly, "memory": memory}[args.mode](args)


if __name__ == "__main__":
    main()
