#!/usr/bin/env python3
"""Independent evaluator of Windows Task Scheduler task XML (python3 stdlib only).

Computes, from the XML alone, the instants at which the triggers of a task fire in a window,
implementing Task Scheduler's documented semantics for the trigger types restic-fleet emits:

* TimeTrigger: fires once at StartBoundary.
* CalendarTrigger with ScheduleByDay (every DaysInterval days from the StartBoundary date),
  ScheduleByWeek (DaysOfWeek, WeeksInterval weeks counted from the StartBoundary week),
  ScheduleByMonth (DaysOfMonth incl. "Last", Months) and ScheduleByMonthDayOfWeek (Weeks 1-4 /
  "Last", DaysOfWeek, Months): fires on each matching date at StartBoundary's time of day, not
  before StartBoundary and not at or after EndBoundary.
* Repetition: after each fire, again every Interval while the elapsed time is within Duration
  (no Duration: indefinitely); a repetition never starts at or after EndBoundary.

Time zones (what the backend documents in src/schedule/windows.rs):

* A boundary with an offset (`Z`, `+02:00`) is an absolute instant; a calendar trigger's dates
  and time of day are read on the wall clock of that offset.
* A boundary without an offset is machine-local time (the zone given with "tz"): a wall time
  skipped by DST fires at the earliest existing time that day (Microsoft's WeeklyTrigger
  remarks); a repeated wall time fires once, on the first pass (assumed; KB 325413 says it is
  unspecified).
* Strictness checks (raise instead of guessing): a calendar trigger with an offset must never
  fire at an instant where the zone's real offset differs from the written one (then the
  offset-clock and the local-clock readings of the trigger would disagree), and a repetition
  must never land exactly on the end of its Duration.

Input (stdin): JSON lines {"id", "xml", "tz", "from", "to"}; "from"/"to" RFC 3339, the window
is (from, to]. Output (stdout): JSON lines {"id", "instants": ["YYYY-MM-DDTHH:MM:SSZ", ...]}
or {"id", "error": "..."}.
"""

import calendar
import json
import re
import sys
import xml.etree.ElementTree as ET
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

NS = "{http://schemas.microsoft.com/windows/2004/02/mit/task}"
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
DUR = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


class EvalError(Exception):
    pass


def duration(text):
    m = DUR.match(text.strip())
    if not m or text.strip() in ("P", "PT"):
        raise EvalError(f"bad duration {text!r}")
    d, h, mi, s = (int(x) if x else 0 for x in m.groups())
    return ((d * 24 + h) * 60 + mi) * 60 + s


def parse_boundary(text, tz):
    t = text.strip()
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    dt = datetime.fromisoformat(t)
    if dt.tzinfo is None:
        return local_instant(dt, tz), None
    return dt, dt.utcoffset()


def local_instant(wall, tz):
    """Machine-local wall time -> aware datetime (documented gap rule, first pass)."""
    a = wall.replace(tzinfo=tz, fold=0)
    back = a.astimezone(timezone.utc).astimezone(tz).replace(tzinfo=None)
    if back != wall:  # skipped: earliest existing time that day after the gap
        probe = wall
        while True:
            probe += timedelta(minutes=1)
            p = probe.replace(tzinfo=tz, fold=0)
            if p.astimezone(timezone.utc).astimezone(tz).replace(tzinfo=None) == probe:
                return p
    return a


def child(el, name):
    return el.find(NS + name)


def text_of(el, name, default=None):
    c = child(el, name)
    return c.text if c is not None and c.text is not None else default


def matching_dates(sched, start_date, first_date, last_date):
    """Dates in [max(start_date, first_date), last_date] the schedule matches (intervals are
    counted from start_date)."""
    kind = sched.tag[len(NS):]
    d = max(start_date, first_date)
    if kind == "ScheduleByDay":
        step = int(text_of(sched, "DaysInterval", "1"))
        while d <= last_date:
            if (d - start_date).days % step == 0:
                yield d
            d += timedelta(days=1)
    elif kind == "ScheduleByWeek":
        dows = {DAYS.index(c.tag[len(NS):]) for c in child(sched, "DaysOfWeek")}
        step = int(text_of(sched, "WeeksInterval", "1"))
        week0 = start_date - timedelta(days=start_date.weekday())
        while d <= last_date:
            if d.weekday() in dows and ((d - week0).days // 7) % step == 0:
                yield d
            d += timedelta(days=1)
    elif kind in ("ScheduleByMonth", "ScheduleByMonthDayOfWeek"):
        months_el = child(sched, "Months")
        months = (set(range(1, 13)) if months_el is None
                  else {MONTHS.index(c.tag[len(NS):]) + 1 for c in months_el})
        if kind == "ScheduleByMonth":
            days = [c.text.strip() for c in child(sched, "DaysOfMonth")]
        else:
            dows = {DAYS.index(c.tag[len(NS):]) for c in child(sched, "DaysOfWeek")}
            weeks_el = child(sched, "Weeks")
            weeks = ({"1", "2", "3", "4", "Last"} if weeks_el is None
                     else {c.text.strip() for c in weeks_el})
        while d <= last_date:
            if d.month in months:
                mlen = calendar.monthrange(d.year, d.month)[1]
                if kind == "ScheduleByMonth":
                    ok = str(d.day) in days or ("Last" in days and d.day == mlen)
                else:
                    wk = str((d.day - 1) // 7 + 1)
                    ok = d.weekday() in dows and (wk in weeks or ("Last" in weeks and d.day + 7 > mlen))
                if ok:
                    yield d
            d += timedelta(days=1)
    else:
        raise EvalError(f"unsupported schedule {kind}")


def trigger_instants(trig, tz, lo, hi):
    """Epoch seconds in (lo, hi] at which one trigger fires."""
    kind = trig.tag[len(NS):]
    if text_of(trig, "Enabled", "true").strip() != "true":
        return set()
    start, start_off = parse_boundary(text_of(trig, "StartBoundary"), tz)
    end_text = text_of(trig, "EndBoundary")
    end = parse_boundary(end_text, tz)[0] if end_text else None
    end_ts = end.timestamp() if end else None
    rep = child(trig, "Repetition")
    interval = dur = None
    if rep is not None:
        interval = duration(text_of(rep, "Interval"))
        if interval < 60 or interval > 31 * 86400:
            raise EvalError(f"repetition interval {interval}s outside PT1M..P31D")
        d = text_of(rep, "Duration")
        dur = duration(d) if d else None
        if dur is not None and dur < interval:
            raise EvalError("repetition duration shorter than its interval")
    bases = []
    if kind == "TimeTrigger":
        bases.append(start)
    elif kind == "CalendarTrigger":
        sched = [c for c in trig if c.tag[len(NS):].startswith("ScheduleBy")]
        if len(sched) != 1:
            raise EvalError("a CalendarTrigger needs exactly one ScheduleBy* element")
        if start_off is not None:
            frame = timezone(start_off)
            first = start.astimezone(frame)
            last_day = datetime.fromtimestamp(hi, frame).date()
            first_day = max(first.date(), datetime.fromtimestamp(lo, frame).date() - timedelta(days=2))
            for d in matching_dates(sched[0], first.date(), first_day, last_day):
                bases.append(datetime.combine(d, first.timetz()))
        else:
            wall = start.astimezone(tz).replace(tzinfo=None)
            last_day = datetime.fromtimestamp(hi, tz).date()
            first_day = datetime.fromtimestamp(lo, tz).date() - timedelta(days=2)
            for d in matching_dates(sched[0], wall.date(), first_day, last_day):
                bases.append(local_instant(datetime.combine(d, wall.time()), tz))
    else:
        raise EvalError(f"unsupported trigger {kind}")
    out = set()
    start_ts = start.timestamp()
    for b in bases:
        b_ts = int(b.timestamp())
        if b_ts < start_ts:
            continue
        k = 0
        while True:
            x = b_ts + k * (interval or 0)
            if k > 0 and dur is not None:
                if k * interval == dur:
                    raise EvalError("a repetition lands exactly on the end of its Duration")
                if k * interval > dur:
                    break
            if x > hi or (end_ts is not None and x >= end_ts):
                break
            if x > lo:
                if kind == "CalendarTrigger" and start_off is not None:
                    real = datetime.fromtimestamp(x, tz).utcoffset()
                    if real != start_off:
                        raise EvalError(
                            f"calendar trigger starting {text_of(trig, 'StartBoundary')} fires at "
                            f"{datetime.fromtimestamp(x, timezone.utc)} where the zone's offset is "
                            f"{real}: Task Scheduler's DST behaviour would decide")
                out.add(x)
            if interval is None:
                break
            k += 1
    return out


def evaluate(xml_text, tz_name, lo, hi):
    tz = ZoneInfo(tz_name)
    root = ET.fromstring(xml_text)
    if root.tag == NS + "Task":
        triggers = child(root, "Triggers")
    elif root.tag == NS + "Triggers" or root.tag == "Triggers":
        triggers = root
    else:
        raise EvalError(f"unexpected root {root.tag}")
    out = set()
    if triggers is None:
        return out
    if len(list(triggers)) > 48:
        raise EvalError("more than 48 triggers")
    for trig in triggers:
        out |= trigger_instants(trig, tz, lo, hi)
    return out


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        case = json.loads(line)
        try:
            xml_text = case["xml"]
            if not xml_text.lstrip().startswith("<?xml") and "xmlns" not in xml_text.split(">", 1)[0]:
                # A bare <Triggers> element (schedule preview): put it in the task namespace.
                xml_text = xml_text.replace("<Triggers", f'<Triggers xmlns="{NS[1:-1]}"', 1)
            if xml_text.lstrip().startswith("<?xml"):
                xml_text = xml_text.split("?>", 1)[1]
            lo = datetime.fromisoformat(case["from"].replace("Z", "+00:00")).timestamp()
            hi = datetime.fromisoformat(case["to"].replace("Z", "+00:00")).timestamp()
            inst = sorted(evaluate(xml_text, case["tz"], lo, hi))
            res = {"id": case["id"], "instants": [
                datetime.fromtimestamp(x, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") for x in inst]}
        except Exception as e:  # noqa: BLE001 - reported per case
            res = {"id": case.get("id"), "error": f"{type(e).__name__}: {e}"}
        print(json.dumps(res), flush=True)


# ---------------------------------------------------------------------------------------------
# `task_eval.py --check FILE...`: well-formedness, element order and value formats of task XML
# files, with the rules of the published Task Scheduler schema reference:
#   taskType / Task element:       learn.microsoft.com/windows/win32/taskschd/taskschedulerschema-task-element
#   triggerBaseType (sequence Enabled, StartBoundary, EndBoundary, Repetition, ExecutionTimeLimit):
#     learn.microsoft.com/windows/win32/taskschd/taskschedulerschema-triggerbasetype-complextype
#   calendarTriggerType (then RandomDelay, then one of ScheduleByDay/Week/Month/MonthDayOfWeek):
#     learn.microsoft.com/windows/win32/taskschd/taskschedulerschema-calendartriggertype-complextype
#   timeTriggerType (then RandomDelay): .../taskschedulerschema-timetriggertype-complextype
#   repetitionType (sequence Interval, Duration, StopAtDurationEnd; Interval PT1M..P31D):
#     learn.microsoft.com/windows/win32/taskschd/taskschedulerschema-repetitiontype-complextype
#   daysOfWeekType (Sunday..Saturday empty elements), monthsType (January..December), daysOfMonth
#     (Day 1-31 or Last), weeksType (Week 1-4 or Last): .../taskschedulerschema-daysofweektype-complextype,
#     .../taskschedulerschema-monthstype-complextype, .../taskschedulerschema-weekstype-complextype
#   settingsType (xs:all of the names below): .../taskschedulerschema-settingstype-complextype
#   principalType (sequence UserId, LogonType, GroupId, DisplayName, RunLevel, ...):
#     learn.microsoft.com/windows/win32/taskschd/taskschedulerschema-principaltype-complextype
#   execType (sequence Command, Arguments, WorkingDirectory): .../taskschedulerschema-exectype-complextype
#   dateTime boundaries (YYYY-MM-DDTHH:MM:SS with optional Z or +-HH:MM):
#     .../taskschedulerschema-startboundary-triggerbasetype-element
#   durations (P<days>DT<hours>H<minutes>M<seconds>S): .../taskschedulerschema-interval-repetitiontype-element
#   at most 48 triggers: .../taskschedulerschema-triggers-tasktype-element
# ---------------------------------------------------------------------------------------------

BOUNDARY = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)?$")
TASK_CHILDREN = ["RegistrationInfo", "Triggers", "Principals", "Settings", "Data", "Actions"]
REG_CHILDREN = {"URI", "SecurityDescriptor", "Source", "Date", "Author", "Version",
                "Description", "Documentation"}
BASE_SEQ = ["Enabled", "StartBoundary", "EndBoundary", "Repetition", "ExecutionTimeLimit"]
SCHEDULES = {"ScheduleByDay", "ScheduleByWeek", "ScheduleByMonth", "ScheduleByMonthDayOfWeek"}
SETTINGS_BOOL = {"AllowStartOnDemand", "DisallowStartIfOnBatteries", "StopIfGoingOnBatteries",
                 "AllowHardTerminate", "StartWhenAvailable", "RunOnlyIfNetworkAvailable",
                 "WakeToRun", "Enabled", "Hidden", "RunOnlyIfIdle", "UseUnifiedSchedulingEngine",
                 "DisallowStartOnRemoteAppSession"}
SETTINGS_OTHER = {"RestartOnFailure", "MultipleInstancesPolicy", "NetworkProfileName",
                  "DeleteExpiredTaskAfter", "IdleSettings", "NetworkSettings",
                  "ExecutionTimeLimit", "Priority"}
PRINCIPAL_SEQ = ["UserId", "LogonType", "GroupId", "DisplayName", "RunLevel",
                 "ProcessTokenSidType", "RequiredPrivileges"]
LOGON_TYPES = {"S4U", "Password", "InteractiveToken", "InteractiveTokenOrPassword",
               "ServiceAccount", "None"}


def local(el):
    if not el.tag.startswith(NS):
        raise EvalError(f"element {el.tag} outside the task namespace")
    return el.tag[len(NS):]


def in_order(parent, order, what):
    names = [local(c) for c in parent]
    idx = []
    for n in names:
        if n not in order:
            raise EvalError(f"{what}: unexpected element {n}")
        idx.append(order.index(n))
    if idx != sorted(idx) or len(set(names)) != len(names):
        raise EvalError(f"{what}: elements {names} out of schema order {order}")
    return names


def check_duration(text, what):
    t = (text or "").strip()
    if not DUR.match(t) or t in ("P", "PT"):
        raise EvalError(f"{what}: {t!r} is not a P<days>DT<hours>H<minutes>M<seconds>S duration")
    return duration(t)


def check_bool(text, what):
    if (text or "").strip() not in ("true", "false"):
        raise EvalError(f"{what}: {text!r} is not true/false")


def check_trigger(trig):
    kind = local(trig)
    if kind not in ("TimeTrigger", "CalendarTrigger"):
        raise EvalError(f"unexpected trigger {kind}")
    names = [local(c) for c in trig]
    base = [n for n in names if n in BASE_SEQ]
    rest = names[len(base):]
    if names[:len(base)] != base:
        raise EvalError(f"{kind}: base elements must come first: {names}")
    in_order(trig_subset(trig, BASE_SEQ), BASE_SEQ, kind)
    if "StartBoundary" not in base:
        raise EvalError(f"{kind}: StartBoundary is required for time-based triggers")
    for n in ("StartBoundary", "EndBoundary"):
        v = text_of(trig, n)
        if v is not None and not BOUNDARY.match(v.strip()):
            raise EvalError(f"{kind}: {n} {v!r} is not YYYY-MM-DDTHH:MM:SS[Z|+-HH:MM]")
    check_bool(text_of(trig, "Enabled", "true"), f"{kind}/Enabled")
    rep = child(trig, "Repetition")
    if rep is not None:
        in_order(rep, ["Interval", "Duration", "StopAtDurationEnd"], "Repetition")
        iv = check_duration(text_of(rep, "Interval"), "Repetition/Interval")
        if not 60 <= iv <= 31 * 86400:
            raise EvalError("Repetition/Interval must be between PT1M and P31D")
        if child(rep, "Duration") is not None:
            if check_duration(text_of(rep, "Duration"), "Repetition/Duration") < iv:
                raise EvalError("Repetition/Duration must not be shorter than the Interval")
        if child(rep, "StopAtDurationEnd") is not None:
            check_bool(text_of(rep, "StopAtDurationEnd"), "StopAtDurationEnd")
    if kind == "TimeTrigger":
        if [n for n in rest if n != "RandomDelay"]:
            raise EvalError(f"TimeTrigger: unexpected {rest}")
        return
    if rest and rest[0] == "RandomDelay":
        rest = rest[1:]
    if len(rest) != 1 or rest[0] not in SCHEDULES:
        raise EvalError(f"CalendarTrigger needs exactly one ScheduleBy* after the base: {rest}")
    sched = child(trig, rest[0])
    kind = rest[0]
    if kind == "ScheduleByDay":
        in_order(sched, ["DaysInterval"], kind)
        if not 1 <= int(text_of(sched, "DaysInterval", "1")) <= 365:
            raise EvalError("DaysInterval must be 1-365")
    elif kind == "ScheduleByWeek":
        in_order(sched, ["DaysOfWeek", "WeeksInterval"], kind)
        check_days_of_week(child(sched, "DaysOfWeek"))
        if not 1 <= int(text_of(sched, "WeeksInterval", "1")) <= 52:
            raise EvalError("WeeksInterval must be 1-52")
    elif kind == "ScheduleByMonth":
        in_order(sched, ["DaysOfMonth", "Months"], kind)
        days = [c for c in child(sched, "DaysOfMonth")]
        if not days:
            raise EvalError("DaysOfMonth is empty")
        for d in days:
            if local(d) != "Day" or not (d.text.strip() == "Last" or 1 <= int(d.text) <= 31):
                raise EvalError(f"bad DaysOfMonth entry {local(d)} {d.text!r}")
        check_months(child(sched, "Months"))
    else:
        names = [local(c) for c in sched]
        if len(set(names)) != len(names) or not set(names) <= {"Weeks", "DaysOfWeek", "Months"}:
            raise EvalError(f"{kind}: bad children {names}")
        for w in child(sched, "Weeks") if child(sched, "Weeks") is not None else []:
            if local(w) != "Week" or w.text.strip() not in ("1", "2", "3", "4", "Last"):
                raise EvalError(f"bad Week {w.text!r}")
        check_days_of_week(child(sched, "DaysOfWeek"))
        if child(sched, "Months") is not None:
            check_months(child(sched, "Months"))


def trig_subset(trig, names):
    sub = ET.Element(trig.tag)
    for c in trig:
        if local(c) in names:
            sub.append(c)
    return sub


def check_days_of_week(el):
    if el is None or not len(el):
        raise EvalError("DaysOfWeek is missing or empty")
    order = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
    in_order(el, order, "DaysOfWeek")
    for c in el:
        if (c.text or "").strip() or len(c):
            raise EvalError("day elements are empty elements")


def check_months(el):
    if el is None or not len(el):
        raise EvalError("Months is missing or empty")
    in_order(el, MONTHS, "Months")


def check_task(raw):
    if not raw.startswith(b"\xff\xfe"):
        raise EvalError("not UTF-16LE with a byte-order mark")
    text = raw[2:].decode("utf-16-le")
    if not text.startswith('<?xml version="1.0" encoding="UTF-16"?>'):
        raise EvalError("missing the UTF-16 XML declaration")
    root = ET.fromstring(text.split("?>", 1)[1])
    if root.tag != NS + "Task" or root.get("version") not in ("1.2", "1.3", "1.4"):
        raise EvalError("root must be <Task version=1.2+> in the task namespace")
    names = in_order(root, TASK_CHILDREN, "Task")
    if "Actions" not in names:
        raise EvalError("Task needs Actions")
    reg = child(root, "RegistrationInfo")
    if reg is not None:
        for c in reg:
            if local(c) not in REG_CHILDREN:
                raise EvalError(f"RegistrationInfo: unexpected {local(c)}")
    triggers = child(root, "Triggers")
    if triggers is not None:
        if len(triggers) > 48:
            raise EvalError("more than 48 triggers")
        for t in triggers:
            check_trigger(t)
    principals = child(root, "Principals")
    if principals is not None:
        if len(principals) != 1 or local(principals[0]) != "Principal":
            raise EvalError("Principals holds exactly one Principal")
        p = principals[0]
        in_order(p, PRINCIPAL_SEQ, "Principal")
        lt = text_of(p, "LogonType")
        if lt is not None and lt not in LOGON_TYPES:
            raise EvalError(f"bad LogonType {lt}")
        if text_of(p, "RunLevel") not in ("LeastPrivilege", "HighestAvailable"):
            raise EvalError("bad RunLevel")
    settings = child(root, "Settings")
    if settings is not None:
        seen = set()
        for c in settings:
            n = local(c)
            if n in seen:
                raise EvalError(f"Settings: {n} twice")
            seen.add(n)
            if n in SETTINGS_BOOL:
                check_bool(c.text, f"Settings/{n}")
            elif n == "ExecutionTimeLimit":
                check_duration(c.text, "Settings/ExecutionTimeLimit")
            elif n == "MultipleInstancesPolicy":
                if c.text not in ("Parallel", "Queue", "IgnoreNew", "StopExisting"):
                    raise EvalError("bad MultipleInstancesPolicy")
            elif n == "Priority":
                if not 0 <= int(c.text) <= 10:
                    raise EvalError("Priority must be 0-10")
            elif n not in SETTINGS_OTHER:
                raise EvalError(f"Settings: unexpected {n}")
    actions = child(root, "Actions")
    execs = list(actions)
    if not 1 <= len(execs) <= 32 or any(local(e) != "Exec" for e in execs):
        raise EvalError("Actions holds 1-32 Exec elements")
    for e in execs:
        in_order(e, ["Command", "Arguments", "WorkingDirectory"], "Exec")
        if not (text_of(e, "Command") or "").strip():
            raise EvalError("Exec needs a Command")


def check_main(paths):
    bad = 0
    for p in paths:
        try:
            with open(p, "rb") as f:
                check_task(f.read())
            print(f"ok {p}")
        except Exception as e:  # noqa: BLE001
            bad += 1
            print(f"FAIL {p}: {type(e).__name__}: {e}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--check":
        check_main(sys.argv[2:])
    else:
        main()
