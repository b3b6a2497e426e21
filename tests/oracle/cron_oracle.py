#!/usr/bin/env python3
"""Independent oracle for cron fire instants (Vixie cron semantics with Debian's DST rules).

Reads JSON on stdin: {"search_days": D, "queries": [{"expr", "tz", "base", "n"}, ...]}
with `base` in Unix seconds, and prints a JSON list with, per query, a list of up to n Unix
seconds (the first fire instants strictly after base) or {"error": "..."}.

Wall-clock matches come from cronsim (iterated over *naive* datetimes, so cronsim's own DST
handling is not used). cronsim implements the Vixie day rule (a day field starting with `*`
makes the relation AND); croniter does not (it ORs `*/3` with a restricted day-of-week), so
croniter is not used. The daylight-saving rules are applied here with zoneinfo:

* wall time skipped by a change: fixed-time job (neither minute nor hour starts with `*`)
  fires at the end of the gap, other jobs do not fire;
* wall time repeated: fixed-time job fires on the first pass only, other jobs on both passes;
* Debian's cron.c applies the two rules above only to clock changes under three hours: after a
  jump forward of three hours or more (Pacific/Apia skipped 30 December 2011) a skipped
  fixed-time job does not fire, and after a jump back that long fixed-time jobs fire on both
  passes too.
"""

import json
import sys
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

UTC = timezone.utc
MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
LOOKBACK = timedelta(hours=3)
CLOCK_RESET = timedelta(hours=3)


def is_imaginary(wall, zone):
    aware = wall.replace(tzinfo=zone, fold=0)
    return aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall


def instants(wall, zone, fixed):
    """UTC instants at which the wall time fires."""
    if is_imaginary(wall, zone):
        if not fixed:
            return []
        end = wall
        while is_imaginary(end, zone):
            end += timedelta(minutes=1)
        at = end.replace(tzinfo=zone, fold=0).astimezone(UTC)
        jump = at.astimezone(zone).utcoffset() - (at - timedelta(seconds=1)).astimezone(zone).utcoffset()
        if jump >= CLOCK_RESET:
            return []
        return [at]
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    first, second = min(first, second), max(first, second)
    if first != second and (not fixed or second - first >= CLOCK_RESET):
        return [first, second]
    return [first]


MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec".split()
DAYS = "sun mon tue wed thu fri sat".split()


def name_value(text, field):
    low = text.lower()
    if field == 3 and low in MONTHS:
        return MONTHS.index(low) + 1
    if field == 4 and low in DAYS:
        return DAYS.index(low)
    return int(text)


def work_around_cronsim(parts):
    """cronsim reads a one-value range with a step (`12-12/9`) like `12/9` (12-max/9);
    Vixie cron sets just the one value. Rewrite such items to the plain value."""
    out = []
    for field, text in enumerate(parts):
        items = []
        for item in text.split(","):
            if "/" in item and "-" in item.split("/", 1)[0]:
                a, b = item.split("/", 1)[0].split("-", 1)
                if name_value(a, field) == name_value(b, field):
                    item = a
            items.append(item)
        out.append(",".join(items))
    return out


def evaluate(expr, tz, base, n, search_days):
    text = MACROS.get(expr.strip().lower(), expr.strip())
    parts = work_around_cronsim(text.split())
    text = " ".join(parts)
    fixed = not parts[0].startswith("*") and not parts[1].startswith("*")
    zone = ZoneInfo(tz)
    base_dt = datetime.fromtimestamp(base, UTC)
    start = base_dt.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0)
    start -= LOOKBACK + timedelta(minutes=1)
    try:
        it = CronSim(text, start)
    except CronSimError as e:
        # cronsim refuses an expression whose days can never exist (e.g. 30 February);
        # such an expression simply never fires.
        if str(e) == "Bad day-of-month":
            return {"never": True, "instants": []}
        return {"error": f"cronsim: {e}"}
    found = set()
    limit_wall = start + timedelta(days=search_days + 2)
    try:
        for wall in it:
            if wall > limit_wall:
                break
            for t in instants(wall, zone, fixed):
                if t > base_dt:
                    found.add(t)
            if len(found) >= n:
                nth = sorted(found)[n - 1]
                nth_wall = nth.astimezone(zone).replace(tzinfo=None)
                if wall > nth_wall + LOOKBACK:
                    break
            elif found:
                last_wall = max(found).astimezone(zone).replace(tzinfo=None)
                limit_wall = max(limit_wall, last_wall + timedelta(days=search_days + 2))
    except StopIteration:
        pass
    seq = sorted(found)[:n]
    # next_after gives up after `search_days` days of wall-clock dates: cut the sequence at
    # the first gap that long.
    out = []
    prev = base_dt
    for t in seq:
        prev_date = (prev.astimezone(zone) - LOOKBACK).date()
        if t.astimezone(zone).date() > prev_date + timedelta(days=search_days):
            break
        out.append(int(t.timestamp()))
        prev = t
    return {"instants": out}


def main():
    req = json.load(sys.stdin)
    days = req["search_days"]
    out = []
    for q in req["queries"]:
        try:
            out.append(evaluate(q["expr"], q["tz"], q["base"], q["n"], days))
        except Exception as e:  # report, never hide
            out.append({"error": f"{type(e).__name__}: {e}"})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
