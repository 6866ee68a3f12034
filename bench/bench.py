#!/usr/bin/env python3
"""campaign-elt benchmark: the whole `campaign-elt run` against the pure-SQL baseline and
PostgreSQL's own COPY of typed rows, side by side on the same server, several rounds.

Usage:
  bench/bench.py [--lines 4000000] [--rounds 3] [--baseline PATH] [--input FILE]   full comparison
  bench/bench.py --no-build --binary NEW --compare-binary OLD [--lines N]         two builds, one run
  bench/bench.py parse-only [--lines N]                              the Rust side alone
  bench/bench.py first-load [--lines 4000000]                       realistic first load vs baseline, floor
  bench/bench.py night-n [--history-lines N] [--night-lines N]      a history, then three nights in a row
  bench/bench.py growth [--growth-history-lines N] [--night-lines N] the same night on 1x and 4x history
  bench/bench.py backfill [--history-lines N]                        an hour missing 30 days back, then it
  bench/bench.py nightly [--days 30] [--events-per-hour 5500]        a month, then one new day (older)
  bench/bench.py memory [--sizes 200000,2000000,20000000]             peak RSS by input size
  bench/bench.py html --customers 1000 --users 100000 --customer-skew 1.1   the HTML report on 90 days

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

The scenarios (first-load, night-n, growth, backfill) run on `generate --mix realistic` data
(--customers, --users, --customer-skew passed to generate; the last only when given), give every
figure as a ratio to a floor measured in the same run (PostgreSQL's binary COPY of exactly the rows
the tool added: into a table without indexes, or into an indexed copy of the same history), count
the rows the tool read from elt.events with PostgreSQL's statistics, and end with a check of the
tool's reports against `campaign-elt refresh --full-refresh` on a copy of its database (MATCH /
DIFF, DIFF exits 1). bench/README.md describes the floors, the counters and the data.

Connects with the libpq variables (default PGHOST=127.0.0.1 PGUSER=postgres); creates and drops
databases named campaign_elt_bench_*. Data goes to bench-data/ (generated with
`campaign-elt generate`, reused when present). Reports medians and ratios, never asserts on
times: people judge the numbers.
"""
import argparse
import collections
import datetime
import filecmp
import json
import math
import os
import random
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


# Runs the measured command from a small, freshly started Python that forks it and reports its
# ru_maxrss on a pipe. Linux keeps a process's peak RSS across exec(), so a command forked from
# this script (tens of MiB once it has compared reports) would inherit this script's peak as its
# own: every first-load figure read 81-83 MiB that way while the loader itself peaked at about
# 40 MiB (`/usr/bin/time -f %M` on the same file). The launcher's own RSS (under 10 MiB) is
# then the lowest figure a measurement can show.
RSS_LAUNCHER = """
import os, sys
fd = int(sys.argv[1])
pid = os.fork()
if pid == 0:
    os.close(fd)
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    except OSError as error:
        os.write(2, f"{sys.argv[2]}: {error}\\n".encode())
    os._exit(127)
_, status, usage = os.wait4(pid, 0)
os.write(fd, str(usage.ru_maxrss).encode())
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def timed(args, stdin=None, stdout=subprocess.DEVNULL, env=None, stderr_path=None):
    """Runs a command; returns (seconds, peak RSS in MiB of the command itself, stdout). With
    STDERR_PATH its standard error goes to that file (e.g. -vv logs, which could fill a pipe)."""
    stderr = open(stderr_path, "w+b") if stderr_path else subprocess.PIPE
    rss_read, rss_write = os.pipe()
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-S", "-c", RSS_LAUNCHER, str(rss_write), *map(str, args)],
                               env=env or ENV, stdin=stdin, stdout=stdout, stderr=stderr, pass_fds=(rss_write,))
    os.close(rss_write)
    process.wait()
    seconds = time.perf_counter() - start
    with os.fdopen(rss_read, "rb") as rss_pipe:
        rss_kib = rss_pipe.read()
    output = process.stdout.read() if process.stdout else b""
    if stderr_path:
        stderr.seek(0)
        errors = stderr.read().decode(errors="replace")
        stderr.close()
    else:
        errors = process.stderr.read().decode(errors="replace")
    code = process.returncode
    if code != 0:
        sys.exit(f"{' '.join(map(str, args))} exited {code}:\n{errors}")
    return seconds, int(rss_kib) / 1024 if rss_kib else float("nan"), output


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
    print(f"\n  run / baseline      {new['run'] / baseline:.2f}x  (target <= 0.30, stretch 0.25)")
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


def print_comparisons(builds, details=True):
    print("\nreports, the baseline's against campaign-elt's, row for row in every round (counts as integers, "
          "click_through_rate exactly as numeric, no rounding):")
    print(f"  {'relation':<20} {'baseline rows':>14}" + "".join(f"  {each['label']:<28}" for each in builds))
    for relation in REPORTS:
        cells = ""
        for each in builds:
            expected, actual, keys, _ = each["comparison"][relation]
            cells += f"  {('MATCH' if keys == 0 else f'DIFF ({keys:,} keys)') + f', {actual:,} rows':<28}"
        print(f"  {relation:<20} {expected:>14,}{cells}")
    for each in builds if details else ():
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
    binary, hour_lines = args.binary, args.events_per_hour or 5500
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
        path = generated(args.binary, lines, f"memory_realistic_{lines}.jsonl", ["--mix", "realistic"])
        fresh_database("campaign_elt_bench_memory")
        seconds, rss, _ = timed([args.binary, "run", "--quiet", "--database-url", database, path])
        drop_database("campaign_elt_bench_memory")
        print(f"  {lines:>12,} {path.stat().st_size / 1e6:>8,.0f} {seconds:>8.1f}s {rss:>8.1f} MiB")


# ---------------------------------------------------------------------------------------------
# Operator scenarios: first-load, night-n, growth, backfill. Every figure is a ratio to a floor
# (PostgreSQL's binary COPY of exactly the rows the tool added) measured in the same run, on
# `generate --mix realistic` data, and every scenario ends with a report check against
# `campaign-elt refresh --full-refresh` on a copy of the database (MATCH / DIFF; DIFF exits 1).

DB = "campaign_elt_bench_"
# fired_at as the generator writes it (JSON escapes the slashes): "01\/02\/2022, 13:00:05".
FIRED_AT_FIELD = re.compile(rb'"fired_at":"((?:[^"\\]|\\.)*)"')
FIRED_AT_TEXT = re.compile(rb"([0-9]{2})/([0-9]{2})/([0-9]{4}), ([0-9]{2}):([0-9]{2}):([0-9]{2})")
HOUR = datetime.timedelta(hours=1)


def fired_at(line):
    """The line's fired_at as a naive UTC datetime (format %m/%d/%Y, %H:%M:%S, two digits each),
    or None when it has none or it does not parse (a dirty line)."""
    field = FIRED_AT_FIELD.search(line)
    if not field:
        return None
    text = FIRED_AT_TEXT.fullmatch(field[1].replace(b"\\/", b"/"))
    if not text:
        return None
    month, day, year, hour, minute, second = map(int, text.groups())
    try:
        return datetime.datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None


def end_of_file(path):
    """Where a generated file ends in time: the 10th latest fired_at of its last lines (robust to
    the few conflicting re-sends moved up to an hour later)."""
    with open(path, "rb") as source:
        source.seek(max(0, path.stat().st_size - 4_000_000))
        times = sorted(filter(None, map(fired_at, source.read().split(b"\n")[1:])))
    return times[max(0, len(times) - 10)]


def line_count(path):
    with open(path, "rb") as source:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: source.read(1 << 24), b""))


def population(args):
    """The generate flags of the customer variant; --customer-skew only when given."""
    flags = ["--customers", str(args.customers), "--users", str(args.users)]
    if args.customer_skew is not None:
        flags += ["--customer-skew", str(args.customer_skew)]
    return flags


def population_tag(args):
    skew = f"_skew{args.customer_skew}" if args.customer_skew is not None else ""
    return f"c{args.customers}_u{args.users}{skew}"


def realistic_stream(args, lines, events_per_hour, seed=42, start="2022-01-01T00:00:00"):
    """One `generate --mix realistic` stream (cached in bench-data/)."""
    rate = ["--events-per-hour", str(events_per_hour)] if events_per_hour else []
    name = (f"realistic_{lines}_{start[:10]}_eph{events_per_hour or 'default'}_{population_tag(args)}"
            f"_seed{seed}.jsonl")
    return generated(args.binary, lines, name, ["--mix", "realistic", "--start", start, *rate, *population(args)],
                     seed)


def sliced(stream, parts):
    """Cuts STREAM by line number into consecutive files of the given line counts (cached):
    [(suffix, lines), ...] -> paths. Slices of one stream carry its late lines across their borders
    (a night holds lines fired up to 7 days before it starts, as a real night's log does)."""
    paths = [stream.with_name(f"{stream.stem}.{suffix}.jsonl") for suffix, _ in parts]
    if all(path.exists() for path in paths):
        return paths
    print(f"slicing {stream.name} into {', '.join(path.name for path in paths)}...", file=sys.stderr)
    with open(stream, "rb") as source:
        for path, (_, lines) in zip(paths, parts):
            with open(str(path) + ".part", "wb") as target:
                for _ in range(lines):
                    line = source.readline()
                    if not line:
                        sys.exit(f"{stream}: fewer lines than the slices need")
                    target.write(line)
            os.replace(str(path) + ".part", path)
    return paths


def with_resends(night, sources, share, seed):
    """NIGHT plus ceil(SHARE x its lines) lines re-sent byte for byte from SOURCES (the files loaded
    before it), picked among those fired in the 7 days before the last of them ends and inserted at
    random positions (deterministic by SEED). Returns (path, re-sent lines)."""
    night_lines = line_count(night)
    count = math.ceil(share * night_lines)
    path = night.with_name(f"{night.stem}.resend{count}.jsonl")
    if path.exists() or not count:
        return (path if count else night), count
    start = end_of_file(sources[-1])  # where the file before the night ends
    since = start - datetime.timedelta(days=7)
    rng, picked, seen = random.Random(seed), [], 0
    for source in sources:  # reservoir sample of the lines fired in [start - 7 days, start)
        with open(source, "rb") as lines:
            for line in lines:
                at = fired_at(line)
                if at is not None and since <= at < start:
                    seen += 1
                    if len(picked) < count:
                        picked.append(line)
                    elif (slot := rng.randrange(seen)) < count:
                        picked[slot] = line
    if len(picked) < count:
        sys.exit(f"{night}: only {len(picked)} lines fired in the 7 days before it to re-send, {count} wanted")
    rng.shuffle(picked)
    positions = sorted(rng.randrange(night_lines + 1) for _ in picked)
    with open(night, "rb") as source, open(str(path) + ".part", "wb") as target:
        for number, line in enumerate(source):
            while positions and positions[0] == number:
                positions.pop(0)
                target.write(picked.pop())
            target.write(line)
        for _ in positions:
            target.write(picked.pop())
    os.replace(str(path) + ".part", path)
    return path, count


def psql_commands(db, *commands):
    """Each command in its own transaction (vacuum cannot run in one)."""
    args = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db, "-At"]
    for command in commands:
        args += ["-c", command]
    return sh(args, capture_output=True, text=True).stdout.strip()


def settle(db):
    """`vacuum analyze; checkpoint`, before every timed span (tool and floor)."""
    psql_commands(db, "vacuum analyze", "checkpoint")


def clone(template, name):
    """A file-level copy of TEMPLATE (create database ... template); waits for other sessions
    (autovacuum) to leave the template."""
    drop_database(name)
    for attempt in range(20):
        try:
            psql("postgres", f"create database {name} template {template} strategy file_copy")
            return
        except subprocess.CalledProcessError as error:
            if "being accessed by other users" not in (error.stderr or "") or attempt == 19:
                sys.exit(f"cannot copy {template} into {name}:\n{error.stderr}")
            time.sleep(1)


# The rows bitmap heap scans fetched: the table's idx_tup_fetch less its indexes' own (which
# count simple index scans only). A lossy BRIN bitmap returns pages, not rows, as its entries, so
# idx_tup_read alone would miss the rows read through the load_id index.
BITMAP_HEAP_ROWS = """coalesce(t.idx_tup_fetch, 0)
       - coalesce((select sum(i.idx_tup_fetch) from pg_stat_user_indexes i where i.relid = t.relid), 0)"""

COUNTERS = f"""select coalesce(t.seq_tup_read, 0),
       coalesce((select sum(i.idx_tup_read) from pg_stat_user_indexes i where i.relid = t.relid), 0)
       + {BITMAP_HEAP_ROWS},
       coalesce((select s.heap_blks_read + s.heap_blks_hit from pg_statio_user_tables s where s.relid = t.relid), 0),
       coalesce((select string_agg(i.indexrelname || '=' || i.idx_tup_read, ' ' order by i.indexrelname)
                 from pg_stat_user_indexes i where i.relid = t.relid), '')
       || ' bitmap_heap_rows=' || ({BITMAP_HEAP_ROWS})
from pg_stat_user_tables t where t.relid = 'elt.events'::regclass"""


def read_counters(db):
    """elt.events' cumulative counters, from a fresh session after pg_stat_clear_snapshot():
    (seq_tup_read, idx_tup_read summed over its indexes plus the rows bitmap heap scans fetched
    (an upper bound: a btree bitmap scan's rows count twice), heap_blks_read + heap_blks_hit,
    {index: idx_tup_read, "bitmap_heap_rows": ...})."""
    line = psql_commands(db, "select pg_stat_clear_snapshot()", COUNTERS).splitlines()[-1]
    seq, idx, blocks, per_index = line.split("|")
    return int(seq), int(idx), int(blocks), dict(item.split("=") for item in per_index.split())


def settled_counters(db):
    """read_counters once they stop changing: PostgreSQL 15 sends a backend's counters up to ~1 s
    after its transactions end (and at its exit); polled every 0.5 s after a first 1.5 s."""
    time.sleep(1.5)
    last = read_counters(db)
    for _ in range(20):
        time.sleep(0.5)
        now = read_counters(db)
        if now == last:
            return now
        last = now
    print(f"  (the counters of {db} were still changing after 11.5 s)", file=sys.stderr)
    return last


def step_parts(summary):
    """The parts of the load and the refresh that `run --json` times (load.copy, load.merge,
    load.stale_keys, load.ledger_and_commit, load.bulk_finish, refresh.claim_stale_keys,
    refresh.<relation>, refresh.record); a build without them gives none."""
    return {name: seconds for name, seconds in summary["step_seconds"].items() if "." in name}


def tool_span(args, db, path, log_path):
    """One timed `campaign-elt run --json -vv DB PATH` after settle(); the rows it read from
    elt.events by the counters before and after; its summary and step times."""
    settle(db)
    before = settled_counters(db)
    seconds, rss, output = timed([args.binary, "run", "--json", "-vv", *args.run_arg, "--click-through-window-seconds",
                                  str(args.window), "--database-url", url(db), path],
                                 stdout=subprocess.PIPE, stderr_path=log_path)
    after = settled_counters(db)
    summary = json.loads(output)
    indexes = {name: int(after[3].get(name, 0)) - int(before[3].get(name, 0)) for name in after[3]}
    return {"seconds": seconds, "rss": rss, "summary": summary, "steps": summary["step_seconds"],
            "seq": after[0] - before[0], "idx": after[1] - before[1],
            "read": after[0] - before[0] + after[1] - before[1], "blocks": after[2] - before[2],
            "indexes": indexes, "loaded": summary["totals"]["loaded"], "lines": summary["totals"]["lines"],
            "load_ids": [each["load_id"] for each in summary["files"] if each.get("load_id") is not None]}


def export_rows(db, load_ids, path):
    """Exactly the rows the tool added (its loads' events), in binary COPY format, once."""
    ids = ", ".join(map(str, load_ids)) or "null"
    psql(db, f"\\copy (select * from elt.events where load_id in ({ids}) order by load_id, line_number) "
             f"to '{path}' with (format binary)")


def keep_rows(db, load_ids, path):
    """Writes PATH from the tool's rows, or checks that the tool added the same rows as the run the
    file came from (a floor that ran first used those); returns False when they differ."""
    if not path.exists():
        export_rows(db, load_ids, path)
        return True
    check = path.with_suffix(".check")
    export_rows(db, load_ids, check)
    same = filecmp.cmp(path, check, shallow=False)
    if not same:
        print(f"  note: the tool added other rows than in {path.name} (used by a floor that ran first); "
              f"later floors use the new ones", file=sys.stderr)
        os.replace(check, path)
    else:
        check.unlink()
    return same


def rows_ahead(args, db, path, rows_path, log_path):
    """For a floor that runs before the tool: the rows the tool will add, from an untimed run on a
    copy of DB."""
    if rows_path.exists():
        return
    scratch = f"{db}_ahead"
    clone(db, scratch)
    _, _, output = timed([args.binary, "run", "--json", "--quiet", *args.run_arg, "--click-through-window-seconds",
                          str(args.window), "--database-url", url(scratch), path],
                         stdout=subprocess.PIPE, stderr_path=log_path)
    export_rows(scratch, [each["load_id"] for each in json.loads(output)["files"] if each.get("load_id")],
                rows_path)
    drop_database(scratch)


def floor_span(db, table, rows_path):
    """The floor: PostgreSQL's binary COPY of the tool's rows into TABLE, after settle()."""
    settle(db)
    seconds, _, _ = timed(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db, "-c",
                           f"\\copy {table} from '{rows_path}' with (format binary)"])
    return seconds


def indexed_floor(template, name):
    """A second database holding a copy of TEMPLATE's events in bench_floor, created `like
    elt.events including all` (its indexes and check constraint), filled outside any timed span;
    the tool's other relations dropped (elt's functions stay: the check constraint calls one)."""
    clone(template, name)
    psql_commands(name, "create table public.bench_floor (like elt.events including all)",
                  "insert into public.bench_floor select * from elt.events",
                  "drop schema if exists reports, intermediate, staging cascade",
                  "drop table elt.events cascade")
    settle(name)


def no_index_floor(binary, name):
    """An empty database with floor_events `like elt.events including defaults`: no indexes."""
    fresh_database(name)
    sh([binary, "migrate", "--quiet", "--database-url", url(name)], stdout=subprocess.DEVNULL)
    psql_commands(name, "create table public.floor_events (like elt.events including defaults)",
                  "drop schema if exists reports, intermediate, staging cascade", "drop table elt.events cascade")


def full_refresh_check(args, db):
    """DB's reports against `campaign-elt refresh --full-refresh` in a copy of DB, row for row."""
    copy = f"{db}_full"
    clone(db, copy)
    sh([args.binary, "refresh", "--full-refresh", "--quiet", "--database-url", url(copy)], stdout=subprocess.DEVNULL)
    comparison = compare_reports(copy, db)
    drop_database(copy)
    return comparison


def print_checks(checks):
    """[(label, comparison)] -> prints MATCH / DIFF per relation and label; True if any DIFF."""
    print("\nreports, campaign-elt's against `campaign-elt refresh --full-refresh` on a copy of its database, "
          "row for row (counts as integers, click_through_rate exactly as numeric):")
    print(f"  {'relation':<20}" + "".join(f"  {label:<36}" for label, _ in checks))
    for relation in REPORTS:
        cells = ""
        for _, comparison in checks:
            expected, actual, keys, _ = comparison[relation]
            text = "MATCH" if keys == 0 else f"DIFF ({keys:,} keys)"
            cells += f"  {text + f', {actual:,} rows (full {expected:,})':<36}"
        print(f"  {relation:<20}{cells}")
    for label, comparison in checks:
        for relation, (_, _, keys, differing) in comparison.items():
            if keys:
                print(f"\n  DIFF {relation} ({label}): {keys:,} keys differ; the first {len(differing)}, by key, "
                      f"values ({', '.join(REPORTS[relation])}):")
                for (customer_id, hour), expected, actual in differing:
                    print(f"    customer {customer_id} hour {hour}: full refresh {shown(expected)}, "
                          f"campaign-elt {shown(actual)}")
    diff = any(verdict(comparison) == "DIFF" for _, comparison in checks)
    print(f"\n  {'DIFF: the figures above are void' if diff else 'MATCH'}")
    return diff


def median(values):
    return statistics.median(values)


def night_history_lines(args):
    return args.history_lines


def load_template(args, name, paths):
    """A database with PATHS loaded by one untimed `campaign-elt run`; returns (seconds, events)."""
    fresh_database(name)
    seconds, _, _ = timed([args.binary, "run", "--quiet", "--click-through-window-seconds", str(args.window),
                           "--database-url", url(name), *paths])
    events = int(psql(name, "select count(*) from elt.events"))
    settle(name)
    return seconds, events


def measure_night(args, tool_db, floor_db, path, rows_path, tool_first, log_path, night_target=True):
    """The tool and the indexed floor on one night, in the given order; returns the tool's span
    (with 'floor', 'history' and 'ratio' added)."""
    history = int(psql(tool_db, "select count(*) from elt.events"))
    if not tool_first:
        rows_ahead(args, tool_db, path, rows_path, log_path)
        floor = floor_span(floor_db, "bench_floor", rows_path)
    span = tool_span(args, tool_db, path, log_path)
    same_rows = keep_rows(tool_db, span["load_ids"], rows_path)
    if tool_first:
        floor = floor_span(floor_db, "bench_floor", rows_path)
    span.update(floor=floor, history=history, ratio=span["seconds"] / floor, same_rows=same_rows)
    span["target"] = 5 * span["loaded"] + 0.05 * history
    print(f"    {span['seconds']:.2f} s ({'tool first' if tool_first else 'floor first'}), floor {floor:.2f} s, "
          f"{span['ratio']:.2f}x; {span['loaded']:,} new events on {history:,}; rows read {span['read']:,}"
          + (f" (target {span['target']:,.0f})" if night_target else "") + f"; refresh recomputed {span['summary']['refresh']['recomputed_keys']:,} keys",
          file=sys.stderr)
    return span


def spans_header():
    print(f"  {'':<14} {'lines':>10} {'new events':>10} {'campaign-elt s':>14} {'[min-max]':>13} {'lines/s':>9} "
          f"{'floor s':>8} {'[min-max]':>13} {'ratio':>7}   {'rows read':>11} {'target':>11} {'read/tgt':>8} "
          f"{'heap blks':>10} {'keys':>7}")


def spans_row(label, spans):
    """One line from several rounds' spans of the same night: medians and [min-max]."""
    seconds = [each["seconds"] for each in spans]
    floors = [each["floor"] for each in spans]
    read, target = median([each["read"] for each in spans]), median([each["target"] for each in spans])
    print(f"  {label:<14} {spans[0]['lines']:>10,} {spans[0]['loaded']:>10,} {median(seconds):>14.2f} "
          f"{spread(seconds):>13} {spans[0]['lines'] / median(seconds):>9,.0f} {median(floors):>8.2f} "
          f"{spread(floors):>13} {median([each['ratio'] for each in spans]):>6.2f}x   {read:>11,.0f} {target:>11,.0f} "
          f"{read / target:>7.2f}x {median([each['blocks'] for each in spans]):>10,.0f} "
          f"{median([each['summary']['refresh']['recomputed_keys'] for each in spans]):>7,.0f}")


def steps_table(rows):
    """[(label, spans)]: the tool's own step times (--json step_seconds, with the parts of the load
    and the refresh), one line per step, and its refresh's events_read, medians; then where the
    rows were read."""
    names = sorted({name for _, spans in rows for each in spans for name in each["steps"]})
    print("\n  time per step (s, medians): campaign-elt's --json step_seconds (load.* summed over batches):")
    print(f"  {'':<42}" + "".join(f" {label:>14}" for label, _ in rows))
    for name in names:
        print(f"  {name:<42}" + "".join(f" {median([each['steps'].get(name, 0) for each in spans]):>14.2f}"
                                        for _, spans in rows))
    print(f"  {'refresh events_read (rows)':<42}"
          + "".join(f" {median([each['summary']['refresh']['events_read'] for each in spans]):>14,.0f}"
                    for _, spans in rows))
    print("\n  rows read from elt.events during the night (medians): seq_tup_read, then idx_tup_read per index:")
    for label, spans in rows:
        indexes = sorted({name for each in spans for name in each["indexes"]})
        print(f"  {label:<14} seq {median([each['seq'] for each in spans]):>12,.0f}"
              + "".join(f"  {name} {median([each['indexes'].get(name, 0) for each in spans]):>12,.0f}" for name in indexes))


def night_rate(args):
    """Clean events per hour for night-n and growth: --events-per-hour, else 42,000 (a night of
    1,050,000 lines then spans about a day)."""
    return args.events_per_hour or 42_000


def night_n(args):
    build(args)
    rate, nights = night_rate(args), 3
    stream = realistic_stream(args, args.history_lines + nights * args.night_lines, rate)
    history, *night_slices = sliced(stream, [("history", args.history_lines)]
                                    + [(f"night{k + 1}", args.night_lines) for k in range(nights)])
    night_files, resent = [], []
    for k, night in enumerate(night_slices):
        path, count = with_resends(night, [history, *night_slices[:k]], args.resend_share, seed=100 + k)
        night_files.append(path)
        resent.append(count)
    template, floor_template = f"{DB}night_template", f"{DB}night_floor_template"
    history_seconds, history_events = load_template(args, template, [history])
    indexed_floor(template, floor_template)
    print(f"history {history.name}: {args.history_lines:,} lines, {history_events:,} events, loaded in "
          f"{history_seconds:.1f} s (not a figure)", file=sys.stderr)
    tool_db, floor_db = f"{DB}night_tool", f"{DB}night_floor"
    rows_paths = [DATA / f"rows_night{k + 1}.bin" for k in range(nights)]
    for path in rows_paths:
        path.unlink(missing_ok=True)
    log_path = DATA / "night-n.log"
    spans, checks = [[] for _ in range(nights)], []
    for round_number in range(args.rounds):
        clone(template, tool_db)
        clone(floor_template, floor_db)
        for k in range(nights):
            tool_first = (round_number + k) % 2 == 0
            print(f"round {round_number + 1} night {k + 1}:", file=sys.stderr)
            spans[k].append(measure_night(args, tool_db, floor_db, night_files[k], rows_paths[k], tool_first, log_path))
            if round_number == args.rounds - 1:
                checks.append((f"after night {k + 1}", full_refresh_check(args, tool_db)))
        drop_database(floor_db)
        if round_number < args.rounds - 1:
            drop_database(tool_db)
    drop_database(tool_db)
    for each in (template, floor_template):
        drop_database(each)
    for path in rows_paths:
        path.unlink(missing_ok=True)

    print(f"\nnight-n: a history of {args.history_lines:,} realistic lines ({history_events:,} events, from 2022-01-01, "
          f"{rate:,} clean events/hour, {args.customers:,} customers, {args.users:,} users"
          + (f", customer skew {args.customer_skew}" if args.customer_skew is not None else "")
          + f"), then {nights} nights in a row of {args.night_lines:,} lines each plus "
          f"{', '.join(f'{count:,}' for count in resent)} lines re-sent from the 7 days before each.")
    print(f"{args.rounds} round(s) of the three nights (medians, [min-max]"
          + ("; one sample per night: the three nights are the spread" if args.rounds == 1 else "")
          + "); ratio = campaign-elt / floor (binary COPY of the night's rows into an indexed copy of the "
          "events before the night); rows read = seq_tup_read + idx_tup_read of elt.events + the rows "
          "bitmap heap scans fetched; "
          "target = 5 x the night's new events + 5 % of the history:")
    spans_header()
    for k in range(nights):
        spans_row(f"night {k + 1}", spans[k])
    steps_table([(f"night {k + 1}", spans[k]) for k in range(nights)])
    if not all(each["same_rows"] for night in spans for each in night):
        print("\n  note: a round added other rows than the one its floor copied (see stderr)")
    if print_checks(checks):
        sys.exit(1)


def growth(args):
    build(args)
    rate, lines = night_rate(args), args.growth_history_lines
    # One stream: 4x history = 3 older quarters + the 1x history, then the night, so the night (and
    # its re-sends from the last 7 days) is byte for byte the same on both histories.
    stream = realistic_stream(args, 4 * lines + args.night_lines, rate, seed=44)
    older, recent, night = sliced(stream, [("older", 3 * lines), ("recent", lines), ("night", args.night_lines)])
    night, resent = with_resends(night, [recent], args.resend_share, seed=200)
    histories = [("1x", [recent]), ("4x", [older, recent])]
    dbs, summaries = {}, {}
    for label, paths in histories:
        template, floor_template = f"{DB}growth_{label}_template", f"{DB}growth_{label}_floor_template"
        seconds, events = load_template(args, template, paths)
        indexed_floor(template, floor_template)
        dbs[label] = (template, floor_template)
        summaries[label] = events
        print(f"history {label}: {sum(map(line_count, paths)):,} lines, {events:,} events, loaded in {seconds:.1f} s "
              f"(not a figure)", file=sys.stderr)
    log_path = DATA / "growth.log"
    spans, checks = {label: [] for label, _ in histories}, []
    for round_number in range(args.rounds):
        # Which history goes first alternates, and on each history whether the tool or the floor does.
        for label, _ in (histories if round_number % 2 == 0 else histories[::-1]):
            j = [name for name, _ in histories].index(label)
            template, floor_template = dbs[label]
            tool_db, floor_db = f"{DB}growth_{label}_tool", f"{DB}growth_{label}_floor"
            clone(template, tool_db)
            clone(floor_template, floor_db)
            print(f"round {round_number + 1} history {label}:", file=sys.stderr)
            spans[label].append(measure_night(args, tool_db, floor_db, night, DATA / f"rows_growth_{label}.bin",
                                              (round_number + j) % 2 == 0, log_path))
            if round_number == args.rounds - 1:
                checks.append((f"night on {label}", full_refresh_check(args, tool_db)))
            drop_database(tool_db)
            drop_database(floor_db)
    for label, _ in histories:
        for each in dbs[label]:
            drop_database(each)
        (DATA / f"rows_growth_{label}.bin").unlink(missing_ok=True)

    print(f"\ngrowth: the same night ({line_count(night):,} lines of which {resent:,} re-sent from the last 7 days) on "
          f"a history of {lines:,} lines (1x, {summaries['1x']:,} events) and of {4 * lines:,} lines (4x the days at "
          f"{rate:,} clean events/hour, {summaries['4x']:,} events); {args.customers:,} customers, {args.users:,} users"
          + (f", customer skew {args.customer_skew}" if args.customer_skew is not None else "")
          + f"; {args.rounds} round(s) (medians, [min-max]); ratio = campaign-elt / indexed floor on the same history:")
    spans_header()
    for label, _ in histories:
        spans_row(f"on {label}", spans[label])
    steps_table([(f"on {label}", spans[label]) for label, _ in histories])
    one, four = spans["1x"], spans["4x"]
    print(f"\n  4x / 1x   night seconds {median([e['seconds'] for e in four]) / median([e['seconds'] for e in one]):.2f}x, "
          f"rows read {median([e['read'] for e in four]) / max(1, median([e['read'] for e in one])):.2f}x "
          f"(target <= 1.3x for both), floor seconds "
          f"{median([e['floor'] for e in four]) / median([e['floor'] for e in one]):.2f}x")
    if print_checks(checks):
        sys.exit(1)


def cut_hour(history, hour):
    """HISTORY without the lines whose fired_at parses and lies in [HOUR, HOUR + 1 h), and those
    lines in a file of their own (cached). Lines whose fired_at does not parse stay."""
    tag = hour.strftime("%Y%m%dT%H")
    kept, cut = history.with_name(f"{history.stem}.without{tag}.jsonl"), history.with_name(f"{history.stem}.hour{tag}.jsonl")
    if kept.exists() and cut.exists():
        return kept, cut
    with open(history, "rb") as source, open(str(kept) + ".part", "wb") as rest, open(str(cut) + ".part", "wb") as alone:
        for line in source:
            at = fired_at(line)
            (alone if at is not None and hour <= at < hour + HOUR else rest).write(line)
    os.replace(str(kept) + ".part", kept)
    os.replace(str(cut) + ".part", cut)
    return kept, cut


def unsigned_id(value):
    """A customer or user id as the loader accepts it (a JSON integer or a string of 1-19 digits),
    else None."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63:
        return value
    if isinstance(value, str) and 1 <= len(value) <= 19 and value.isascii() and value.isdigit():
        return int(value)
    return None


def hour_relations(hour_file, history, hour, window):
    """Page loads of the cut hour to which clicks of the next hour relate: by event id, and by the
    window (same customer and user, 0..WINDOW s later); counted on the files, before any load."""
    def events(lines, start):
        for line in lines:
            at = fired_at(line)
            if at is None or not start <= at < start + HOUR:
                continue
            try:
                value = json.loads(line)
                customer, user = unsigned_id(value["customer_id"]), unsigned_id(value["user_id"])
                if isinstance(value["event_id"], str) and customer is not None and user is not None:
                    yield value["event_type"], value["event_id"], customer, user, at
            except (ValueError, KeyError, TypeError):
                pass  # lines the loader rejects (the realistic mix's dirt) relate nothing
    loads = [each for each in events(open(hour_file, "rb"), hour) if each[0] == "ReferralPageLoad"]
    clicks = [each for each in events(open(history, "rb"), hour + HOUR) if each[0] == "ReferralRecommendClick"]
    ids = {each[1] for each in loads}
    by_user = collections.defaultdict(list)
    for each in loads:
        by_user[each[2], each[3]].append(each[4])
    by_id = sum(1 for each in clicks if each[1] in ids)
    by_window = sum(1 for each in clicks if any(0 <= (each[4] - at).total_seconds() <= window
                                               for at in by_user.get((each[2], each[3]), ())))
    return len(loads), len(clicks), by_id, by_window


def backfill(args):
    build(args)
    rate = args.events_per_hour or 4_000
    history = realistic_stream(args, args.history_lines, rate)
    end = end_of_file(history)
    hour = (end - datetime.timedelta(days=30)).replace(minute=0, second=0)
    if hour < datetime.datetime(2022, 1, 1, 1):
        sys.exit(f"{history.name} ends {end}: less than 30 days; raise --history-lines or lower --events-per-hour")
    kept, hour_file = cut_hour(history, hour)
    loads, clicks, by_id, by_window = hour_relations(hour_file, kept, hour, args.window)
    print(f"cut hour {hour:%Y-%m-%d %H:00}: {line_count(hour_file):,} lines, {loads:,} page loads; the next hour has "
          f"{clicks:,} clicks, {by_id:,} sharing a page load's event id, {by_window:,} within {args.window} s of a "
          f"page load of the same customer and user", file=sys.stderr)
    template, floor_template = f"{DB}backfill_template", f"{DB}backfill_floor_template"
    seconds, events = load_template(args, template, [kept])
    indexed_floor(template, floor_template)
    print(f"history without the hour: {events:,} events, loaded in {seconds:.1f} s (not a figure)", file=sys.stderr)
    tool_db, floor_db, rows_path = f"{DB}backfill_tool", f"{DB}backfill_floor", DATA / "rows_backfill.bin"
    rows_path.unlink(missing_ok=True)
    spans, checks = [], []
    for round_number in range(args.rounds):
        clone(template, tool_db)
        clone(floor_template, floor_db)
        print(f"round {round_number + 1}:", file=sys.stderr)
        span = measure_night(args, tool_db, floor_db, hour_file, rows_path, round_number % 2 == 0,
                             DATA / "backfill.log", night_target=False)
        refresh_id = span["summary"]["refresh"]["refresh_id"]
        span["key_events"] = int(psql(tool_db, f"""
            select count(*) from elt.refresh_keys k join elt.events e
              on e.customer_id = k.customer_id and e.fired_at >= k.hour and e.fired_at < k.hour + interval '1 hour'
            where k.refresh_id = {refresh_id}"""))
        span["target"] = 3 * span["key_events"]
        span["key_hours"] = psql(tool_db, f"select string_agg(distinct to_char(hour at time zone 'UTC', "
                                          f"'MM-DD HH24'), ' ') from elt.refresh_keys where refresh_id = {refresh_id}")
        spans.append(span)
        if round_number == args.rounds - 1:
            checks.append(("after the backfill", full_refresh_check(args, tool_db)))
        drop_database(tool_db)
        drop_database(floor_db)
    for each in (template, floor_template):
        drop_database(each)
    rows_path.unlink(missing_ok=True)

    print(f"\nbackfill: a history of {args.history_lines:,} realistic lines ({rate:,} clean events/hour, to {end:%Y-%m-%d %H:%M}) "
          f"without the hour {hour:%Y-%m-%d %H:00} (30 days before its end), then that hour's {line_count(hour_file):,} lines "
          f"({loads:,} page loads; {by_id:,} clicks of the next hour share their event id, {by_window:,} fall in the "
          f"{args.window} s window); {args.customers:,} customers, {args.users:,} users"
          + (f", customer skew {args.customer_skew}" if args.customer_skew is not None else "")
          + f"; {args.rounds} round(s) (medians, [min-max]); ratio = campaign-elt / indexed floor (binary COPY of the "
          f"hour's rows into a copy of the history); target = 3 x the events of the keys it recomputes:")
    spans_header()
    spans_row("the hour", spans)
    read, key_events = median([each["read"] for each in spans]), median([each["key_events"] for each in spans])
    print(f"\n  keys recomputed {median([each['summary']['refresh']['recomputed_keys'] for each in spans]):,.0f} "
          f"(hours {spans[-1]['key_hours']}); events of those keys {key_events:,.0f}; rows read {read:,.0f} = "
          f"{read / max(1, key_events):.2f}x the events of the keys it recomputes (target <= 3x)")
    steps_table([("the hour", spans)])
    if print_checks(checks):
        sys.exit(1)


def first_load(args):
    """4M realistic lines into an empty database: the pure-SQL baseline, each build's whole run and
    the no-index floor (binary COPY of the rows the tool stored into a table without indexes),
    alternating the order every round."""
    build(args)
    path = Path(args.input) if args.input else realistic_stream(args, args.lines, args.events_per_hour)
    size = path.stat().st_size
    start = time.perf_counter()
    baseline_path, lines, removed, dropped = baseline_input(path)
    print(f"baseline input (checked in {time.perf_counter() - start:.1f} s, not timed): "
          f"removed {sum(removed.values()):,} of {lines:,} lines it cannot ingest"
          + "".join(f", {reason} {count:,}" for reason, count in sorted(removed.items()))
          + (f"; dropped the trailing CR of {dropped:,}" if dropped else "")
          + (f"; reads {baseline_path.name}" if baseline_path != path else ""), file=sys.stderr)
    builds = [{"label": label, "binary": binary, "comparison": None, "db": f"{DB}first_{label}",
               "results": {"run": [], "load": [], "refresh": [], "rss": []}}
              for label, binary in [("new", args.binary), ("old", args.compare_binary)] if binary]
    rows_path, floor_db, baseline_db = DATA / "rows_first_load.bin", f"{DB}first_floor", f"{DB}baseline"
    rows_path.unlink(missing_ok=True)
    log_path = DATA / "first-load.log"
    results, checks = {"baseline": [], "floor": []}, []

    def baseline_span():
        psql_commands("postgres", "checkpoint")
        seconds, _, _ = timed(["bash", args.baseline, str(baseline_path), baseline_db, str(args.window)],
                              env=BASELINE_ENV)
        results["baseline"].append(seconds)
        return f"baseline {seconds:.2f} s"

    def tool_run(each):
        fresh_database(each["db"])
        settle(each["db"])
        seconds, rss, output = timed([each["binary"], "run", "--json", "-vv", *args.run_arg, "--click-through-window-seconds",
                                      str(args.window), "--database-url", url(each["db"]), path],
                                     stdout=subprocess.PIPE, stderr_path=log_path)
        summary = json.loads(output)
        run = each["results"]
        run["run"].append(seconds)
        run["rss"].append(rss)
        run["load"].append(summary["step_seconds"]["load"])
        run["refresh"].append(summary["step_seconds"]["refresh"])
        each.setdefault("parts", []).append(step_parts(summary))
        if each is builds[0] and not rows_path.exists():
            psql(each["db"], f"\\copy (select * from elt.events order by load_id, line_number) to '{rows_path}' "
                             f"with (format binary)")
        return f"{each['label']} run {seconds:.2f} s (load {run['load'][-1]:.2f} s)"

    def floor_run():
        no_index_floor(args.binary, floor_db)
        seconds = floor_span(floor_db, "floor_events", rows_path)
        drop_database(floor_db)
        results["floor"].append(seconds)
        return f"no-index floor {seconds:.2f} s"

    for round_number in range(1, args.rounds + 1):
        spans = [baseline_span, *[lambda each=each: tool_run(each) for each in builds], floor_run]
        texts = [span() for span in (spans if round_number % 2 else spans[::-1])]
        for each in builds:
            comparison = compare_reports(baseline_db, each["db"])
            if each["comparison"] is None or verdict(each["comparison"]) == "MATCH":
                each["comparison"] = comparison
            if round_number == args.rounds:
                checks.append((f"first load ({each['label']})", full_refresh_check(args, each["db"])))
            drop_database(each["db"])
        drop_database(baseline_db)
        print(f"round {round_number}: {', '.join(texts)}", file=sys.stderr)
    rows_path.unlink(missing_ok=True)

    baseline, floor = median(results["baseline"]), median(results["floor"])
    print(f"\nfirst-load: {lines:,} realistic lines ({size / 1e6:.0f} MB; {args.customers:,} customers, {args.users:,} users"
          + (f", customer skew {args.customer_skew}" if args.customer_skew is not None else "")
          + f") into an empty database, {args.rounds} rounds (medians, [min-max]); the baseline reads its input "
          f"without {sum(removed.values()):,} lines it cannot ingest; ratios to the no-index floor (binary COPY of "
          f"the rows campaign-elt stored into a table without indexes):")
    row("pure-SQL baseline (whole)", results["baseline"], lines, size, ratio=baseline / floor)
    for each in builds:
        run = each["results"]
        name = f"campaign-elt run{', ' + each['label'] if len(builds) > 1 else ''} (whole process)"
        row(name, run["run"], lines, size, median(run["rss"]), median(run["run"]) / floor)
        row("  of which load (lines -> events)", run["load"], lines, size, ratio=median(run["load"]) / floor)
        row("  of which refresh (4 reports)", run["refresh"], lines, size)
        for name in sorted({name for parts in each["parts"] for name in parts}):
            row(f"    {name}", [parts.get(name, 0) for parts in each["parts"]], lines, size)
    row("no-index floor: binary COPY", results["floor"], lines, size, ratio=1.0)
    new = {key: median(values) for key, values in builds[0]["results"].items()}
    print(f"\n  run / baseline      {new['run'] / baseline:.2f}x  (target <= 0.30, stretch 0.25)")
    print(f"  run / floor         {new['run'] / floor:.2f}x")
    print(f"  load / floor        {new['load'] / floor:.2f}x")
    print(f"  loader peak RSS     {new['rss']:.1f} MiB (target < 64)")
    if len(builds) > 1:
        print_builds(*builds)
    print_comparisons(builds, details=False)
    print("  (informational on realistic input: the baseline is laxer than campaign-elt about some fields, "
          "see bench/README.md; the check that voids the figures is the one below)")
    if print_checks(checks):
        sys.exit(1)


def html_report(args):
    """The HTML report on a large history: 1,000 customers over --days (90) days. Renders the
    default report (7 days, --top 20), the whole range (charts per UTC day) and every customer
    charted, and opens each in headless Chromium (--dump-dom) alternating with a floor page of
    the same size made of one <pre> (the browser's own cost of reading that many bytes) and an
    empty page (starting the browser)."""
    days, rate = args.days, args.events_per_hour or 500
    lines = days * 24 * rate
    path = realistic_stream(args, lines, rate)
    db = f"{DB}html"
    fresh_database(db)
    sh([args.binary, "run", "--quiet", "--database-url", url(db), str(path)], stdout=subprocess.DEVNULL)
    psql_commands(db, "vacuum analyze")
    variants = [("default: 7 days, --top 20", []),
                (f"all {days} days, --top 20 (per UTC day)", ["--from", "2022-01-01"]),
                ("7 days, every customer charted (--top 100000)", ["--top", "100000"])]
    chromium = next((c for c in ("chromium", "chromium-browser")
                     if subprocess.run(["which", c], capture_output=True).returncode == 0), None)
    if chromium is None:
        sys.exit("bench html: needs chromium (apt-get install chromium)")
    print(f"\nhtml: {lines:,} realistic lines over {days} days ({population_tag(args)}), "
          f"{args.rounds} rounds (medians, [min-max])", file=sys.stderr)
    empty = DATA / "html_empty.html"
    empty.write_text("<!DOCTYPE html><html><body></body></html>")
    print("| report | render s | bytes | rows read from elt.events | browser s | same-size <pre> s "
          "| empty page s | browser / <pre> |")
    print("|---|---|---|---|---|---|---|---|")
    for label, flags in variants:
        output = DATA / f"html_{len(flags)}_{flags[-1] if flags else 'default'}.html".replace("/", "_")
        floor = output.with_suffix(".floor.html")
        renders, browsers, floors, empties, reads = [], [], [], [], []
        for round_number in range(args.rounds):
            before = settled_counters(db)
            seconds, _, _ = timed([args.binary, "report", "--format", "html", "--quiet", *flags,
                                   "--output", str(output), "--database-url", url(db)])
            after = settled_counters(db)
            renders.append(seconds)
            reads.append(after[0] - before[0] + after[1] - before[1])
            size = output.stat().st_size
            floor.write_text("<!DOCTYPE html><html><body><pre>" + "x" * max(size - 40, 0) + "</pre></body></html>")
            pages = [(browsers, output), (floors, floor), (empties, empty)]
            for results, page in (pages if round_number % 2 == 0 else pages[::-1]):
                with tempfile_dir() as profile:
                    browser_seconds, _, _ = timed(["timeout", "120", chromium, "--headless", "--no-sandbox",
                                                   "--disable-gpu", f"--user-data-dir={profile}",
                                                   "--window-size=1280,4000", "--dump-dom", f"file://{page}"])
                results.append(browser_seconds)
        print(f"| {label} | {median(renders):.2f} {spread(renders)} | {output.stat().st_size:,} | {median(reads):,.0f} "
              f"| {median(browsers):.2f} {spread(browsers)} | {median(floors):.2f} {spread(floors)} "
              f"| {median(empties):.2f} {spread(empties)} | {median(browsers) / median(floors):.2f} |")
    events = psql(db, "select count(*) from elt.events").strip()
    print(f"\n(elt.events holds {int(events):,} rows)")
    drop_database(db)


def tempfile_dir():
    import tempfile
    return tempfile.TemporaryDirectory(prefix="campaign-elt-bench-chromium-")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    modes = {"full": full, "first-load": first_load, "night-n": night_n, "growth": growth, "backfill": backfill,
             "parse-only": parse_only, "nightly": nightly, "memory": memory, "html": html_report}
    parser.add_argument("mode", nargs="?", default="full", choices=list(modes))
    parser.add_argument("--binary", default=str(DEFAULT_BIN), help="the build to measure")
    parser.add_argument("--compare-binary", help="full, first-load: a second build to run in every round")
    parser.add_argument("--no-build", action="store_true", help="do not run cargo build")
    parser.add_argument("--lines", type=int, default=4_000_000, help="full, first-load, parse-only")
    parser.add_argument("--input", help="full, first-load: this JSON-lines file instead of generated data")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=int, default=300, help="click-through window, seconds")
    parser.add_argument("--baseline", default=str(DEFAULT_BASELINE))
    parser.add_argument("--customers", type=int, default=8, help="generate --customers (scenarios)")
    parser.add_argument("--users", type=int, default=99, help="generate --users (scenarios)")
    parser.add_argument("--customer-skew", type=float, metavar="EXPONENT",
                        help="generate --customer-skew, passed only when given (scenarios)")
    parser.add_argument("--history-lines", type=int, default=3_300_000, help="night-n, backfill")
    parser.add_argument("--night-lines", type=int, default=1_050_000, help="night-n, growth")
    parser.add_argument("--growth-history-lines", type=int, default=3_300_000, help="growth: the 1x history")
    parser.add_argument("--resend-share", type=float, default=0.005,
                        help="night-n, growth: share of a night's lines re-sent from the 7 days before it")
    parser.add_argument("--days", type=int, help="nightly (default 30), html (default 90)")
    parser.add_argument("--events-per-hour", type=int,
                        help="clean events per hour; default: nightly 5500, night-n and growth 42000, backfill 4000, "
                             "first-load the generator's")
    parser.add_argument("--sizes", default="200000,2000000,20000000", help="memory")
    parser.add_argument("--run-arg", action="append", default=[], metavar="ARG",
                        help="first-load, night-n, growth, backfill: one more argument for the timed "
                             "`campaign-elt run` (repeat it: --run-arg=--batch-lines --run-arg=1000000)")
    args = parser.parse_args()
    if args.mode not in ("full", "first-load") and (args.compare_binary or args.input):
        parser.error("--compare-binary and --input belong to full and first-load")
    if args.days is None:
        args.days = 90 if args.mode == "html" else 30
    modes[args.mode](args)

if __name__ == "__main__":
    main()
