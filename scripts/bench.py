#!/usr/bin/env python3
"""Measurements of scripts/bench.sh (which starts PostgreSQL, PgBouncer and builds the fleet).

Prints, side by side from one run: `run` vs bare `restic backup` (interleaved, median), no-op
`sync`, `status --json` (in both schedule shapes of bench-fleet.sql), `status --device`, `runs list --job`, `report --html` (and the time
headless Chromium takes to load the page), `cleanup`, N syncs spread over a
minute (p50/p99, errors, connections at once) directly and through PgBouncer, with peak RSS,
statements (pg_stat_statements) and connections (the server log) per command.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ap = argparse.ArgumentParser()
ap.add_argument("--bin", required=True)
ap.add_argument("--url", required=True)
ap.add_argument("--pgb-url", required=True)
ap.add_argument("--server-log", required=True)
ap.add_argument("--repeat", type=int, default=5)
ap.add_argument("--syncs", type=int, default=1000)
ap.add_argument("--sync-seconds", type=float, default=60.0)
ap.add_argument("--files", type=int, default=2000)
ap.add_argument("--runs-per-job", type=int, required=True)
ap.add_argument("--shape", default="cron+interval")
a = ap.parse_args()

work = tempfile.mkdtemp(prefix="restic-fleet-bench-")
PASSWORD = "bench password"


def sql(q, url=None):
    out = subprocess.run(["psql", "-qAtX", url or a.url, "-c", q], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"psql failed: {out.stderr}")
    return out.stdout.strip()


def log_size():
    return os.path.getsize(a.server_log)


def connections_since(offset):
    with open(a.server_log, "rb") as f:
        f.seek(offset)
        text = f.read().decode("utf-8", "replace")
    return sum(1 for l in text.splitlines()
               if "connection authorized" in l and "application_name=restic-fleet" in l)


def statements():
    return int(sql("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
                   "WHERE query NOT ILIKE '%pg_stat_statements%'"))


def timed(argv, env=None, stdin=None):
    """Runs argv; returns (seconds, peak RSS KiB, exit code, stdout)."""
    t = time.monotonic()
    p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    out, err = p.communicate()
    dt = time.monotonic() - t
    # communicate() reaped the child; its rusage is gone, so ask again through wait4 on a
    # second run only when needed. Instead measure RSS with a dedicated run below.
    return dt, p.returncode, out, err


def rss_of(argv, env=None):
    """Peak RSS (KiB) of the process itself, not of the children it waits for (restic): its
    VmHWM, read from /proc until it exits."""
    p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         stdin=subprocess.DEVNULL)
    peak = 0
    while p.poll() is None:
        try:
            with open(f"/proc/{p.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.002)
    return peak


fake = os.path.join(work, "fakebin")
os.makedirs(fake)
with open(os.path.join(fake, "systemctl"), "w") as f:
    f.write("#!/bin/sh\nexit 0\n")
os.chmod(os.path.join(fake, "systemctl"), 0o755)
base_env = dict(os.environ)
base_env.pop("DATABASE_URL", None)
base_env["PATH"] = fake + ":" + base_env["PATH"]
base_env["RESTIC_FLEET_LOG"] = "warn"


def env_for(config):
    e = dict(base_env)
    e["RESTIC_FLEET_CONFIG"] = config
    return e


def profile(name, argv, env, ok=(0,)):
    """Median wall time over `repeat` runs, plus one run each for statements/connections/RSS."""
    times = []
    for _ in range(a.repeat):
        dt, code, out, err = timed(argv, env)
        if code not in ok:
            sys.exit(f"{name} failed ({code}): {err.decode()[-2000:]}")
        times.append(dt)
    sql("SELECT pg_stat_statements_reset()")
    off = log_size()
    dt, code, out, err = timed(argv, env)
    n_st = statements()
    time.sleep(0.3)  # the server log is written asynchronously
    n_conn = connections_since(off)
    rss = rss_of(argv, env)
    return {"name": name, "median_ms": statistics.median(times) * 1000, "min_ms": min(times) * 1000,
            "statements": n_st, "connections": n_conn, "rss_mib": rss / 1024}


rows = []
bin_ = os.path.abspath(a.bin)

# --- the bench device, its repository and a 2,000-file source -----------------------------
cfg = os.path.join(work, "config.toml")
e = env_for(cfg)
subprocess.run([bin_, "init", "--database-url", a.url, "--device-id", "bench-run"], env=e,
               check=True, capture_output=True)
repo = os.path.join(work, "repo")
# Both with their default cache directories, as a device has them: restic's own
# (~/.cache/restic) for the bare command, restic-fleet's (/var/cache/restic-fleet as root) for
# `run`; both warm after the first backup below.
renv = dict(base_env, RESTIC_REPOSITORY=repo, RESTIC_PASSWORD=PASSWORD)
renv.pop("RESTIC_CACHE_DIR", None)
subprocess.run(["restic", "init", "--quiet"], env=renv, check=True, capture_output=True)
for k, v in [("repository_url", repo), ("repository_password", PASSWORD)]:
    sql(f"INSERT INTO settings (device_id, key, value) VALUES (NULL, '{k}', '{v}') "
        f"ON CONFLICT (key) WHERE device_id IS NULL DO UPDATE SET value = EXCLUDED.value")
src = os.path.join(work, "src")
for i in range(a.files):
    d = os.path.join(src, f"d{i // 100}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i}.txt"), "w") as f:
        f.write(f"file {i} " * 20)
job = json.loads(subprocess.run(
    [bin_, "job", "add", "--device", "bench-run", "--name", "bench", "--path", src, "--json"],
    env=e, check=True, capture_output=True).stdout)
job_id = job.get("id") or job.get("job_id")
run_argv = [bin_, "run", job_id]
# What `run` gives restic, typed by hand: the host, the job's two tags, the paths.
restic_argv = ["restic", "backup", "--json", "--host", "bench-run", "--tag", f"backup:{job_id}",
               "--tag", "device:bench-run", src]
# Initial backups (not measured): the rest are incremental.
subprocess.run(run_argv, env=e, check=True, capture_output=True)
subprocess.run(restic_argv, env=renv, check=True, capture_output=True)
t_run, t_restic = [], []
for i in range(max(a.repeat, 9)):
    for which in (("run", "restic") if i % 2 == 0 else ("restic", "run")):
        if which == "run":
            dt, code, _, err = timed(run_argv, e)
            if code != 0:
                sys.exit(f"run failed: {err.decode()[-2000:]}")
            t_run.append(dt)
        else:
            dt, code, _, err = timed(restic_argv, renv)
            if code != 0:
                sys.exit(f"restic failed: {err.decode()[-2000:]}")
            t_restic.append(dt)
r = profile("run (incremental)", run_argv, e)
# Median and minimum of the interleaved series (profile's own runs give statements and RSS).
r["median_ms"] = statistics.median(t_run) * 1000
r["min_ms"] = min(t_run) * 1000
r["extra"] = (f"bare restic {statistics.median(t_restic) * 1000:.0f} ms, ratio "
              f"{statistics.median(t_run) / statistics.median(t_restic):.3f} (target <= 1.05), "
              f"{(statistics.median(t_run) - statistics.median(t_restic)) * 1000:+.0f} ms")
r["rss_mib_restic"] = rss_of(restic_argv, renv) / 1024
rows.append(r)

# --- sync, status, runs list ---------------------------------------------------------------
units = os.path.join(work, "units-bench")
sync_argv = [bin_, "sync", "--unit-dir", units]
subprocess.run(sync_argv, env=e, check=True, capture_output=True)  # installs the units
rows.append(profile("no-op sync", sync_argv, e))
# Whole-fleet status in both schedule shapes of bench-fleet.sql (one cron and one interval
# schedule per job, two cron schedules per job); the fleet is left in the shape it was made in.
status_argv = [bin_, "status", "--json", "--database-url", a.url]
other = "two-cron" if a.shape == "cron+interval" else "cron+interval"
for shape in (a.shape, other):
    if shape != a.shape:
        sql(f"SELECT bench_fleet_shape('{shape}')")
        # Measure a settled fleet, as autovacuum keeps one: not 100,000 schedule updates' dead
        # rows in job_run_state, nor autovacuum cleaning them up during the runs.
        sql("VACUUM (ANALYZE) schedules, job_run_state")
    r = profile(f"status --json (whole fleet, {shape})", status_argv, e, ok=(0, 1))
    r["extra"] = "target <= 300 ms at 10,000 devices / 50,000 jobs (--full)"
    rows.append(r)
sql(f"SELECT bench_fleet_shape('{a.shape}')")
dev = sql("SELECT id FROM devices WHERE id LIKE 'dev-%' ORDER BY id LIMIT 1 OFFSET "
          "(SELECT count(*) / 2 FROM devices)")
rows.append(profile(f"status --device {dev}", [bin_, "status", "--json", "--device", dev,
                                                "--database-url", a.url], e, ok=(0, 1)))
some_job = sql(f"SELECT id FROM backup_jobs WHERE device_id = '{dev}' ORDER BY name LIMIT 1")
rows.append(profile("runs list --job (newest 50)", [bin_, "runs", "list", "--json", "--job", some_job,
                                                    "--database-url", a.url], e))


def browser_load(page):
    """How long headless Chromium takes to load and lay out `page` (DOM dumped to /dev/null),
    next to an empty page (the browser's own start), or why it was not measured."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        return "; headless Chromium not installed, browser load not measured"
    empty = os.path.join(work, "empty.html")
    with open(empty, "w") as f:
        f.write("<!DOCTYPE html><title>empty</title>")

    def load(path):
        argv = [browser, "--headless", "--no-sandbox", "--disable-gpu",
                f"--user-data-dir={os.path.join(work, 'chromium')}", "--dump-dom",
                "file://" + path]
        times = []
        for _ in range(3):
            t = time.monotonic()
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times.append(time.monotonic() - t)
        return statistics.median(times)
    return f"; headless Chromium loads it in {load(page):.1f} s (an empty page: {load(empty):.1f} s)"


page = os.path.join(work, "report.html")
r = profile("report --html (whole fleet)", [bin_, "report", "--html", page, "--database-url", a.url], e)
r["extra"] = (f"target <= 2 s and 256 MiB; page {os.path.getsize(page) / 1e6:.1f} MB"
              + browser_load(page))
rows.append(r)
r = profile("status --json through PgBouncer",
            [bin_, "status", "--json", "--database-url", a.pgb_url + "?pgbouncer=true"],
            e, ok=(0, 1))
r["connections"] = "(pgb)"  # server connections belong to PgBouncer, not to the command
rows.append(r)

# --- cleanup: the oldest two days of history -------------------------------------------------
days = max(a.runs_per_job - 2, 1)
sql(f"UPDATE settings SET value = '{days}' WHERE device_id IS NULL AND key = 'run_retention_days'")
sql("SELECT pg_stat_statements_reset()")
off = log_size()
dt, code, out, err = timed([bin_, "cleanup", "--json", "--database-url", a.url], e)
if code != 0:
    sys.exit(f"cleanup failed: {err.decode()}")
rep = json.loads(out)
rows.append({"name": "cleanup (batches of 10,000)", "median_ms": dt * 1000, "min_ms": dt * 1000,
             "statements": statements(), "connections": connections_since(off), "rss_mib": 0,
             "extra": f"deleted {rep['deleted']} runs in {rep['batches']} batch(es), "
                      f"{rep['deleted'] / max(dt, 1e-9):.0f} runs/s, single measurement"})


# --- N devices syncing within a minute ------------------------------------------------------
def sync_storm(url, label):
    devices = sql(f"SELECT id FROM devices WHERE id LIKE 'dev-%' ORDER BY id LIMIT {a.syncs}").split()
    cfgs = []
    for d in devices:
        c = os.path.join(work, f"storm-{label}-{d}.toml")
        with open(c, "w") as f:
            f.write(f'database_url = "{url}"\ndevice_id = "{d}"\n')
        cfgs.append((d, c))
    results = []
    lock = threading.Lock()
    peak = [0]
    stop = threading.Event()

    def sampler():
        # One psql session for all samples: starting psql and a server backend 20 times a second
        # loaded the machine the syncs were measured on.
        q = ("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
             "AND datname = current_database() AND pid <> pg_backend_pid();\n")
        psql = subprocess.Popen(["psql", "-qAtX", a.url], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, bufsize=1)
        while not stop.is_set():
            psql.stdin.write(q)
            psql.stdin.flush()
            peak[0] = max(peak[0], int(psql.stdout.readline()))
            time.sleep(0.05)
        psql.stdin.close()
        psql.wait()

    def one(d, c):
        argv = [bin_, "sync", "--unit-dir", os.path.join(work, f"units-{label}-{d}")]
        t = time.monotonic()
        # Each simulated machine has a state directory of its own, as real ones do.
        e = env_for(c)
        e["RESTIC_FLEET_STATE_DIR"] = os.path.join(work, f"state-{label}-{d}")
        p = subprocess.run(argv, env=e, capture_output=True)
        with lock:
            results.append((time.monotonic() - t, p.returncode, p.stderr[-300:]))

    th = threading.Thread(target=sampler)
    th.start()
    threads = []
    t0 = time.monotonic()
    gap = a.sync_seconds / max(len(cfgs), 1)
    for i, (d, c) in enumerate(cfgs):
        delay = t0 + i * gap - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        t = threading.Thread(target=one, args=(d, c))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    stop.set()
    th.join()
    times = sorted(r[0] for r in results)
    errors = [r for r in results if r[1] != 0]
    p = lambda q: times[min(len(times) - 1, int(q * len(times)))] * 1000
    return {"name": f"{len(cfgs)} syncs in {a.sync_seconds:.0f} s ({label})", "median_ms": p(0.5),
            "min_ms": times[0] * 1000, "statements": "", "connections": "", "rss_mib": 0,
            "extra": f"p99 {p(0.99):.0f} ms (target <= 150), {len(errors)} error(s), at most "
                     f"{peak[0]} server connection(s) at once"
                     + (f"; first error: {errors[0][2].decode(errors='replace')}" if errors else "")}


rows.append(sync_storm(a.url, "direct"))
rows.append(sync_storm(a.pgb_url + "?pgbouncer=true", "PgBouncer"))

# --- report ----------------------------------------------------------------------------------
print()
print(f"{'what':<40} {'median':>9} {'min':>9} {'stmts':>6} {'conns':>6} {'peak RSS':>9}  notes")
for r in rows:
    rss = f"{r['rss_mib']:.1f} MiB" if r["rss_mib"] else ""
    print(f"{r['name']:<40} {r['median_ms']:>7.0f}ms {r['min_ms']:>7.0f}ms {str(r['statements']):>6} "
          f"{str(r['connections']):>6} {rss:>9}  {r.get('extra', '')}")
print(f"(restic backup alone: peak RSS {rows[0]['rss_mib_restic']:.1f} MiB)")
