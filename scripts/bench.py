#!/usr/bin/env python3
"""The issue 7 benchmark; run it through `scripts/bench`, which builds first.

Every figure is a ratio of two things measured side by side in this one run
(runs interleaved: ours, pg_dump, \\copy, ours, ...; the median of each), so
a slow or busy machine moves both sides together. Absolute times are printed
for context only; nothing passes or fails on them.

  pull     `sandbox pull` to a file  vs  `pg_dump --data-only -t <each pulled
           table>` to a file (the floor for reading them) and vs one psql
           running `\\copy (SELECT * FROM t) TO file` per table.
  rehearse each phase's time as `rehearse --json` reports it.
  push     `sandbox push --confirm`  vs  `psql -f` of the same diff (DDL,
           COPY ... FROM stdin, UPDATEs) plus the plan's verification queries
           and guards, each on a freshly loaded database (load excluded).
  loop     pull + rehearse + push --confirm at scale 1, vs the seed plan's
           50 minutes.
  RSS      peak resident set of every `sandbox` process (wait4 rusage, the
           figure /usr/bin/time -f %M prints).
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

SEED_PLAN_SECONDS = 50 * 60
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/sandbox_bench"
# Tables `fixtures load --scale N` multiplies (the plan never writes them).
SCALED_TABLES = ("prompts", "agents", "personas")


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


class Result:
    def __init__(self, wall, cpu, rss_kib, code, out, err):
        self.wall = wall
        self.cpu = cpu
        self.rss_kib = rss_kib
        self.code = code
        self.out = out
        self.err = err


class Bench:
    def __init__(self, args):
        self.args = args
        self.bin = os.path.abspath(args.bin)
        self.source_bin = self.bin
        self.url = args.database_url
        self.created = None
        self.work = tempfile.mkdtemp(prefix="sandbox-bench-", dir=args.workdir)
        # A private copy: other people rebuilding target/ mid-run must not
        # swap the binary under the measurement.
        shutil.copy2(self.bin, os.path.join(self.work, "sandbox"))
        self.bin = os.path.join(self.work, "sandbox")
        self.revision = source_revision()
        self.load_at_start = load_average()
        self.env = dict(os.environ, NO_COLOR="1", PGCONNECT_TIMEOUT="10")
        for var in ("SANDBOX_DATABASE_URL", "DATABASE_URL", "SANDBOX_PLAN", "SANDBOX_SEEDS"):
            self.env.pop(var, None)

    def path(self, name):
        return os.path.join(self.work, name)

    # -- processes ---------------------------------------------------------

    def run(self, cmd, check=True):
        """Runs cmd; returns its wall time, CPU time (user + system), peak
        RSS (KiB, from wait4's rusage) and output."""
        out_path, err_path = self.path(".stdout"), self.path(".stderr")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=self.env)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)
        with open(out_path, "rb") as f:
            stdout = f.read().decode("utf-8", "replace")
        with open(err_path, "rb") as f:
            stderr = f.read().decode("utf-8", "replace")
        res = Result(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, proc.returncode, stdout, stderr)
        if check and res.code != 0:
            shown = " ".join(c if len(c) < 200 else c[:200] + "…" for c in cmd)
            raise SystemExit(
                f"bench: `{shown}` exited {res.code}\n{stderr[-3000:]}{stdout[-2000:]}"
            )
        return res

    def sandbox(self, *args, check=True):
        return self.run([self.bin, *args], check=check)

    def psql(self, url, *args, check=True):
        return self.run(
            ["psql", "-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1", "-d", url, *args],
            check=check,
        )

    def settle(self):
        """Leaves the database as a long-lived one is (visibility hints set,
        statistics current, nothing dirty) and flushes our own dirty pages,
        so no measured step pays for the previous one."""
        self.psql(self.url, "-c", "VACUUM ANALYZE")
        self.psql(self.url, "-c", "CHECKPOINT", check=False)
        os.sync()

    def remove_scratch(self):
        for name in os.listdir(self.work):
            if name.startswith("t_"):
                p = self.path(name)
                if os.path.isdir(p):
                    shutil.rmtree(p)
                else:
                    os.remove(p)
        os.sync()

    # -- setup ---------------------------------------------------------------

    def ensure_database(self):
        parts = urllib.parse.urlsplit(self.url)
        dbname = parts.path.lstrip("/")
        if not dbname or dbname in ("postgres", "template0", "template1"):
            raise SystemExit(
                "bench: give --database-url a database of its own (it is replaced at every scale)"
            )
        admin = urllib.parse.urlunsplit(parts._replace(path="/postgres"))
        found = self.psql(admin, "-Atc", f"SELECT 1 FROM pg_database WHERE datname = '{dbname}'")
        if found.out.strip() != "1":
            self.psql(admin, "-c", f'CREATE DATABASE "{dbname}"')
            # Made by this run, so this run removes it (unless --keep).
            self.created = (admin, dbname)
        self.server_version = self.psql(self.url, "-Atc", "SHOW server_version").out.strip()

    def load(self, scale):
        res = self.sandbox(
            "fixtures", "load", "--database-url", self.url, "--scale", str(scale), "--replace"
        )
        self.settle()
        return res.wall

    def write_plan(self, scale):
        """The plan in force with the verification counts of the scaled
        tables multiplied, so rehearse and push hold at any scale."""
        folder = self.path(f"plan-{scale}")
        shutil.rmtree(folder, ignore_errors=True)
        self.sandbox("plan", "init", folder)
        with open(os.path.join(folder, "plan.json")) as f:
            plan = json.load(f)
        base = {}
        for v in plan["verification"]:
            for row in v.get("expect_rows") or []:
                if len(row) == 2 and row[0] in SCALED_TABLES:
                    base[row[0]] = int(row[1])
                    row[1] = int(row[1]) * scale
        extra = sum(base.values()) * (scale - 1)
        for v in plan["verification"]:
            if v.get("expect") is not None and all(f"FROM {t})" in v["sql"] for t in base):
                v["expect"] = int(v["expect"]) + extra
        with open(os.path.join(folder, "plan.json"), "w") as f:
            json.dump(plan, f, indent=1)
        path = folder
        return path, plan

    # -- pull ----------------------------------------------------------------

    def bench_pull(self, scale, timed=True, url=None, runs=None):
        url = url or self.url
        runs = runs or self.runs(scale)
        snap = self.path("base.sqlite")
        first = self.sandbox("--json", "pull", "--database-url", url, "--out", snap, "--force")
        report = json.loads(first.out)
        tables = [t["name"] for t in report["tables"]]
        rows = sum(t["rows"] for t in report["tables"])
        os.sync()
        dump_cmd = ["pg_dump", "--no-password", "--data-only", "-d", url]
        for t in tables:
            dump_cmd += ["-t", f'public."{t}"']
        copy_dir = self.path("t_copy")
        copy_cmd = ["psql", "-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1", "-d", url]
        for t in tables:
            copy_cmd += ["-c", f"\\copy (SELECT * FROM public.\"{t}\") TO '{copy_dir}/{t}.copy'"]
        ours, dump, copy = [], [], []
        for i in range(runs if timed else 0):
            log(f"  pull run {i + 1}/{runs} at {scale}x")
            ours.append(
                self.sandbox(
                    "pull", "--database-url", url, "--out", self.path("t_pull.sqlite"), "--force"
                )
            )
            self.remove_scratch()
            dump.append(self.run(dump_cmd + ["-f", self.path("t_dump.sql")]))
            self.remove_scratch()
            os.makedirs(copy_dir)
            copy.append(self.run(copy_cmd))
            self.remove_scratch()
        return {
            "tables": tables,
            "rows": rows,
            "snapshot": snap,
            "snapshot_bytes": os.path.getsize(snap),
            "ours": ours,
            "pg_dump": dump,
            "copy": copy,
        }

    # -- rehearse ------------------------------------------------------------

    def bench_rehearse(self, scale, base_snapshot, plan_path):
        runs = []
        target = self.path("rehearsed.sqlite")
        for i in range(self.runs(scale)):
            log(f"  rehearse run {i + 1}/{self.runs(scale)} at {scale}x")
            shutil.copyfile(base_snapshot, target)
            os.sync()
            res = self.sandbox("--json", "rehearse", "--snapshot", target, "--plan", plan_path, check=False)
            if res.code != 0:
                try:
                    failed = [
                        f"{c['phase']} {c['name']}: expected {c['expected']}, found {c['actual']}"
                        for c in json.loads(res.out)["checks"]
                        if not c["ok"]
                    ]
                except (ValueError, KeyError):
                    failed = [res.err[-2000:]]
                raise SystemExit("bench: the rehearsal failed at scale %d:\n  %s" % (scale, "\n  ".join(failed)))
            res.report = json.loads(res.out)
            runs.append(res)
        return target, runs

    # -- push ----------------------------------------------------------------

    def diff_script(self, scale, snapshot, plan_path, plan):
        """Returns (psql files to run, description). Prefers the script
        `sandbox diff --sql` writes; if that does not apply cleanly to a
        fresh database, builds the same statements from `diff --json`."""
        verify = self.path(f"verify-{scale}.sql")
        with open(verify, "w") as f:
            for q in plan["verification"] + plan["guards"]:
                f.write(q["sql"].rstrip().rstrip(";") + ";\n")
        own = self.path(f"diff-{scale}.sql")
        # The same scale runs once per link: the script of the earlier link
        # is this run's own file, so replacing it is expected.
        res = self.sandbox(
            "--json", "diff", "--snapshot", snapshot, "--plan", plan_path, "--sql", own, "--force"
        )
        diff = json.loads(res.out)
        self.load(scale)
        trial = self.psql(self.url, "-f", own, "-f", verify, check=False)
        if trial.code == 0:
            return [own, verify], "psql -f <sandbox diff --sql> + verification & guards", None
        why = next((l for l in trial.err.splitlines() if "ERROR" in l), trial.err.strip()[:300])
        built = self.path(f"diff-built-{scale}.sql")
        self.write_equivalent_script(diff, plan, built)
        return [built], "psql -f <same DDL/COPY/UPDATEs, built from diff --json> + verification & guards", why

    def write_equivalent_script(self, diff, plan, path):
        phases = [p["id"] for p in plan["phases"]]
        triggers = {}
        for t in diff["tables"]:
            if t["updates"]:
                q = (
                    "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
                    f"AND c.relname = '{t['table']}' AND NOT t.tgisinternal AND t.tgenabled <> 'D' "
                    "AND (t.tgtype & 1) = 1 AND (t.tgtype & 2) = 2 AND (t.tgtype & 16) = 16"
                )
                triggers[t["table"]] = self.psql(self.url, "-Atc", q).out.split()
        with open(path, "w", encoding="utf-8") as f:
            f.write("BEGIN;\n")
            for phase in phases:
                for d in diff["ddl"]:
                    if d["phase"] == phase:
                        f.write(d["sql"] + ";\n")
                for t in diff["tables"]:
                    rows = [p["row"] for p in t["phase_inserts"] if p["phase"] == phase]
                    if rows:
                        cols = ", ".join(ident(c["name"]) for c in t["columns"])
                        f.write(f"COPY public.{ident(t['table'])} ({cols}) FROM stdin;\n")
                        for r in rows:
                            f.write("\t".join(copy_field(v) for v in r) + "\n")
                        f.write("\\.\n")
                    updates = [p["update"] for p in t["phase_updates"] if p["phase"] == phase]
                    if updates:
                        # As push does: hold off the updated_at trigger.
                        for tg in triggers.get(t["table"], []):
                            f.write(f"ALTER TABLE public.{ident(t['table'])} DISABLE TRIGGER {ident(tg)};\n")
                        for u in updates:
                            sets = ", ".join(f"{ident(c['column'])} = {literal(c['new'])}" for c in u["changes"])
                            cond = " AND ".join(f"{ident(k)} = {literal(v)}" for k, v in zip(t["key"], u["key"]))
                            f.write(f"UPDATE public.{ident(t['table'])} SET {sets} WHERE {cond};\n")
                        for tg in triggers.get(t["table"], []):
                            f.write(f"ALTER TABLE public.{ident(t['table'])} ENABLE TRIGGER {ident(tg)};\n")
            for q in plan["verification"] + plan["guards"]:
                f.write(q["sql"].rstrip().rstrip(";") + ";\n")
            f.write("COMMIT;\n")

    def bench_push(self, scale, rehearsed, plan_path, plan, url=None, proxy=None, runs=None):
        url = url or self.url
        runs = runs or self.runs(scale)
        files, how, why = self.diff_script(scale, rehearsed, plan_path, plan)
        psql_args = []
        for f in files:
            psql_args += ["-f", f]
        ours, theirs, received = [], [], []
        for i in range(runs):
            log(f"  push run {i + 1}/{runs} at {scale}x")
            self.load(scale)
            theirs.append(self.psql(url, "-o", os.devnull, *psql_args))
            self.load(scale)
            snap = self.path("t_push.sqlite")
            shutil.copyfile(rehearsed, snap)
            os.sync()
            seen = proxy.mark() if proxy else None
            res = self.sandbox(
                "--json", "push", "--database-url", url, "--snapshot", snap, "--plan", plan_path, "--confirm"
            )
            outcome = json.loads(res.out).get("outcome")
            if outcome != "applied":
                raise SystemExit(f"bench: push ended '{outcome}', not 'applied'")
            if proxy:
                received.append(proxy.received_since(seen))
            ours.append(res)
            self.remove_scratch()
        return {"ours": ours, "psql": theirs, "how": how, "why_not_own": why, "received": received, "files": files}

    # -- a live, remote database (issue 11) ------------------------------------

    def start_proxy(self, rtt_ms, mbit):
        return Proxy(self.bin, self.url, rtt_ms, mbit)

    APP_NAME = "sandbox_bench_app"

    def app_session(self):
        """One psql session next to the database (not through the link),
        named so the wait sampler can find its backend."""
        env = dict(self.env or os.environ)
        env["PGAPPNAME"] = self.APP_NAME
        proc = subprocess.Popen(
            ["psql", "-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1", "-d", self.url],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        proc.stdin.write("\\timing on\n")
        return proc

    def app_longest(self, proc):
        out, err = proc.communicate("\\q\n", timeout=600)
        if proc.returncode != 0:
            raise SystemExit(f"bench: the app writer failed: {err[-2000:]}")
        times = [float(l.split()[1]) / 1000 for l in out.splitlines() if l.startswith("Time: ")]
        if not times:
            raise SystemExit("bench: the app writer measured nothing")
        return max(times)

    def app_waits(self, statement, seconds):
        """An app running `statement` every 20 ms for `seconds`; returns the
        longest statement time in seconds, as psql's \\timing reports it."""
        proc = self.app_session()
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            proc.stdin.write(statement + "\n")
            proc.stdin.flush()
            time.sleep(0.02)
        return self.app_longest(proc)

    def app_waits_beside(self, statement, work):
        """The app from 1 s before `work` (a function run on a thread) to
        0.5 s after it; returns (longest wait, what the app's backend waited
        on: sampled pg_stat_activity wait events, counted), and work's result."""
        import threading
        box = {}
        def run():
            time.sleep(1.0)
            box["res"] = work()
        sampler = WaitSampler(self.url, self.env, self.APP_NAME)
        th = threading.Thread(target=run)
        th.start()
        proc = self.app_session()
        after = None
        while True:
            if not th.is_alive() and after is None:
                after = time.perf_counter() + 0.5
            if after is not None and time.perf_counter() > after:
                break
            proc.stdin.write(statement + "\n")
            proc.stdin.flush()
            time.sleep(0.02)
        th.join()
        waits = sampler.stop()
        return self.app_longest(proc), waits, box["res"]

    def bench_app(self, scale, rehearsed, plan_path, url, table, statement, runs, script=None):
        """Longest wait of the app's statement while a push runs over the
        link, without a push for as long, and (with `script`) beside `psql
        -f` of the same diff over the same link; plus what the app's backend
        waited on during the push (a lock of the push's would show as Lock)."""
        during, alone, push_s, beside_psql, waits = [], [], [], [], {}
        for i in range(runs):
            log(f"  app writing {table} during push, run {i + 1}/{runs} at {scale}x")
            self.load(scale)
            snap = self.path("t_push.sqlite")
            shutil.copyfile(rehearsed, snap)
            # As before the timed push: the copy's dirty pages are the
            # bench's, and the push's first SQLite fsync of the snapshot
            # would flush all of them while the app waits on its WAL fsync.
            os.sync()
            t0 = time.perf_counter()
            longest, seen, res = self.app_waits_beside(statement, lambda: self.sandbox(
                "--json", "push", "--database-url", url, "--snapshot", snap, "--plan", plan_path,
                "--confirm", check=False,
            ))
            if res.code != 0 or json.loads(res.out).get("outcome") != "applied":
                raise SystemExit(f"bench: push with the app writing {table} failed: {res.err[-2000:]}{res.out[-1000:]}")
            span = time.perf_counter() - t0
            during.append(longest)
            push_s.append(res.wall)
            for k, v in seen.items():
                waits[k] = waits.get(k, 0) + v
            self.load(scale)
            alone.append(self.app_waits(statement, span))
            if script:
                self.load(scale)
                args = []
                for f in script:
                    args += ["-f", f]
                longest, _, _ = self.app_waits_beside(statement, lambda: self.psql(url, "-o", os.devnull, *args))
                beside_psql.append(longest)
        return {"during": during, "alone": alone, "push": push_s, "beside_psql": beside_psql, "waits": waits}

    def bench_live(self, scale, rehearsed, plan_path, plan):
        out = {}
        first = lambda q: self.psql(self.url, "-Atc", q).out.strip()
        for rtt in self.args.rtt_ms:
            mbit = self.args.mbit if rtt > 0 else 0
            log(f"scale {scale}x over the link: rtt {rtt} ms, {mbit or 'no'} Mbit/s cap")
            proxy = self.start_proxy(rtt, mbit)
            try:
                runs = self.args.runs or 3
                pull = self.bench_pull(scale, url=proxy.url, runs=runs)
                push = self.bench_push(scale, rehearsed, plan_path, plan, url=proxy.url, proxy=proxy, runs=runs)
                self.load(scale)
                prompt = first("SELECT id FROM prompts ORDER BY id LIMIT 1")
                jtbd = first("SELECT id FROM jtbd_library ORDER BY id LIMIT 1")
                apps = {
                    # A real write: the plan never touches prompts.
                    "prompts": self.bench_app(
                        scale, rehearsed, plan_path, proxy.url, "prompts",
                        f"UPDATE prompts SET name = name WHERE id = '{prompt}';", runs,
                        script=push["files"],
                    ),
                    # A write statement that matches no row: it takes the
                    # lock a writer takes, without changing what the push
                    # checked for drift (a real change refuses the push).
                    "jtbd_library": self.bench_app(
                        scale, rehearsed, plan_path, proxy.url, "jtbd_library",
                        f"UPDATE jtbd_library SET title = title WHERE id = '{jtbd}' AND title <> title;", runs,
                    ),
                    # A reader of the table the plan adds a column to: it
                    # waits only for the push's ACCESS EXCLUSIVE (ADD
                    # COLUMN), from that lock to COMMIT.
                    "jtbd_library reader": self.bench_app(
                        scale, rehearsed, plan_path, proxy.url, "jtbd_library (reading)",
                        f"SELECT count(*) FROM jtbd_library WHERE id <> '{jtbd}';", runs,
                    ),
                }
            finally:
                proxy.stop()
            out[rtt] = {"mbit": mbit, "pull": pull, "push": push, "apps": apps}
        return out

    # -- loop ----------------------------------------------------------------

    def bench_loop(self):
        """The loop as a person runs it at 1x: default plan, no flags."""
        out = []
        for i in range(self.runs(1)):
            log(f"  loop run {i + 1}/{self.runs(1)} at 1x")
            self.load(1)
            snap = self.path("t_loop.sqlite")
            pull = self.sandbox("pull", "--database-url", self.url, "--out", snap, "--force")
            reh = self.sandbox("rehearse", "--snapshot", snap)
            push = self.sandbox("push", "--database-url", self.url, "--snapshot", snap, "--confirm")
            out.append((pull.wall, reh.wall, push.wall))
            self.remove_scratch()
        return out

    def runs(self, scale):
        if self.args.runs:
            return self.args.runs
        return 3 if scale >= 100 else 5


class WaitSampler:
    """Samples, every 10 ms on its own session, what the app's backend is
    waiting on while it runs a statement (pg_stat_activity.wait_event_type
    and wait_event): a lock the push holds shows as Lock, a disk flush the
    app's own COMMIT waits for as IO:WALSync."""

    def __init__(self, url, env, app_name):
        self.out = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            ["psql", "-X", "-q", "-At", "--no-password", "-d", url],
            stdin=subprocess.PIPE, stdout=self.out, stderr=subprocess.DEVNULL, text=True, env=env,
        )
        self.proc.stdin.write(
            "SELECT wait_event_type || ':' || wait_event FROM pg_stat_activity "
            f"WHERE application_name = '{app_name}' AND state = 'active' "
            "AND wait_event_type IS NOT NULL \\watch 0.01\n"
        )
        self.proc.stdin.flush()

    def stop(self):
        import signal
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.communicate("\\q\n", timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.out.seek(0)
        counts = {}
        for line in self.out.read().splitlines():
            line = line.strip()
            if line and ":" in line:
                counts[line] = counts.get(line, 0) + 1
        return counts


class Proxy:
    """`sandbox latency-proxy` in front of the database: every measured
    client connects through it; it reports each closed connection's bytes."""

    def __init__(self, binary, url, rtt_ms, mbit):
        import threading
        parts = urllib.parse.urlsplit(url)
        upstream = f"{parts.hostname or '127.0.0.1'}:{parts.port or 5432}"
        self.proc = subprocess.Popen(
            [binary, "latency-proxy", "--upstream", upstream, "--rtt-ms", str(rtt_ms), "--mbit", str(mbit)],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        )
        first = self.proc.stdout.readline().strip()
        if not first.startswith("listening on "):
            raise SystemExit(f"bench: the latency proxy did not start: {first}")
        port = first.rsplit(":", 1)[1]
        netloc = parts.netloc.rsplit("@", 1)
        host = f"127.0.0.1:{port}"
        self.url = urllib.parse.urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))
        self.closed = []
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            fields = dict(f.split("=") for f in line.split()[1:] if "=" in f)
            with self.lock:
                self.closed.append(int(fields.get("to_client", 0)))

    def mark(self):
        with self.lock:
            return len(self.closed)

    def received_since(self, mark):
        """Bytes sent to clients by connections closed since `mark` (the
        push's own connection is closed when the process exits)."""
        time.sleep(0.3)
        with self.lock:
            return sum(self.closed[mark:])

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def ident(name):
    return '"' + name.replace('"', '""') + '"'


def literal(v):
    return "NULL" if v is None else "'" + v.replace("'", "''") + "'"


COPY_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\b": "\\b", "\f": "\\f", "\v": "\\v"}


def copy_field(v):
    if v is None:
        return "\\N"
    return "".join(COPY_ESCAPES.get(ch, ch) for ch in v)


def med(values):
    return statistics.median(values)


def secs(s):
    return f"{s * 1000:.0f} ms" if s < 10 else f"{s:.2f} s"


def mib(kib):
    return f"{kib / 1024:.1f} MiB"


def table(headers, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), sep] + [line(r) for r in rows])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--scales", default="1,10,100")
    ap.add_argument("--runs", type=int, default=0, help="runs per measurement (default 5, 3 at 100x)")
    ap.add_argument("--database-url", default=os.environ.get("SANDBOX_BENCH_DATABASE_URL", DEFAULT_URL))
    ap.add_argument("--workdir", default=None, help="where temporary files go (default: $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (and a database this run created)")
    ap.add_argument("--steps", default="pull,rehearse,push,loop", help="a subset of pull,rehearse,push,loop,live")
    ap.add_argument("--rtt-ms", default="0,30", help="live step: round-trip times of the latency link, e.g. 0,30")
    ap.add_argument("--mbit", type=float, default=200.0, help="live step: bandwidth cap of the link (Mbit/s) when rtt > 0")
    args = ap.parse_args()
    scales = sorted({int(s) for s in args.scales.split(",") if s.strip()})
    steps = {s.strip() for s in args.steps.split(",") if s.strip()}
    unknown = steps - {"pull", "rehearse", "push", "loop", "live"}
    if unknown or not steps:
        raise SystemExit(f"bench: --steps takes pull, rehearse, push, loop, live (not {', '.join(sorted(unknown))})")
    args.rtt_ms = [int(x) for x in args.rtt_ms.split(",") if x.strip()]

    b = Bench(args)
    try:
        b.ensure_database()
        results = {}
        loop = None
        for scale in scales:
            log(f"scale {scale}x: loading fixtures")
            load_s = b.load(scale)
            plan_path, plan = b.write_plan(scale)
            pull = b.bench_pull(scale, timed="pull" in steps)
            r = {"load": load_s, "pull": pull}
            if steps & {"rehearse", "push", "live"}:
                rehearsed, r["rehearse"] = b.bench_rehearse(scale, pull["snapshot"], plan_path)
                if "push" in steps:
                    r["push"] = b.bench_push(scale, rehearsed, plan_path, plan)
                if "live" in steps:
                    r["live"] = b.bench_live(scale, rehearsed, plan_path, plan)
            results[scale] = r
            if scale == 1 and "loop" in steps:
                loop = b.bench_loop()
        report(b, scales, results, loop)
        if "live" in steps:
            report_live(scales, results)
    finally:
        if args.keep:
            log(f"work folder kept: {b.work}")
        else:
            if b.created:
                admin, dbname = b.created
                b.psql(admin, "-c", f'DROP DATABASE IF EXISTS "{dbname}"', check=False)
            shutil.rmtree(b.work, ignore_errors=True)


def ratio_text(ours, theirs):
    """Ratio of the medians, then the range of the per-round ratios (each
    round's runs ran back to back, so they shared the machine's load)."""
    r = med([x.wall for x in ours]) / med([x.wall for x in theirs])
    rounds = [a.wall / b.wall for a, b in zip(ours, theirs)]
    return f"{r:.2f}x ({min(rounds):.2f}-{max(rounds):.2f})", r


def load_average():
    try:
        return "%.1f / %.1f / %.1f" % os.getloadavg()
    except OSError:
        return "?"


def source_revision():
    """The commit the measured binary was built from, read when the run
    starts (the build just before it): a commit landed in this clone during
    a long run must not be credited with its figures."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
    except OSError:
        rev, dirty = "?", ""
    return f"{rev}{' + local changes' if dirty else ''}"


def report(b, scales, results, loop):
    psql_v = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip()
    load = f"load average {b.load_at_start} at the start, {load_average()} at the end"
    print()
    print("sandbox benchmark (issue 7): every ratio compares runs interleaved in this one run; times are medians")
    print(
        f"machine: {platform.node()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, {load}; "
        f"Postgres {b.server_version}; {psql_v}; commit {b.revision}"
    )
    version = subprocess.run([b.bin, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"binary: {b.source_bin} ({version})")
    print()
    rows = []
    targets = []
    for s in scales:
        p = results[s]["pull"]
        if not p["ours"]:
            continue
        ours = med([x.wall for x in p["ours"]])
        vs_dump, r_dump = ratio_text(p["ours"], p["pg_dump"])
        vs_copy, _ = ratio_text(p["ours"], p["copy"])
        rows.append([
            "pull", f"{s}x", f"{p['rows']:,} rows", len(p["ours"]), secs(ours), secs(med([x.cpu for x in p["ours"]])),
            secs(med([x.wall for x in p["pg_dump"]])), secs(med([x.wall for x in p["copy"]])),
            vs_dump, vs_copy, mib(max(x.rss_kib for x in p["ours"])),
        ])
        targets.append(f"pull {s}x {r_dump:.2f}x of pg_dump: {'met' if r_dump <= 1.0 else 'MISSED'}")
    for s in scales:
        q = results[s].get("push")
        if not q:
            continue
        vs_psql, r_psql = ratio_text(q["ours"], q["psql"])
        rows.append([
            "push", f"{s}x", "727 ins + 105 upd", len(q["ours"]), secs(med([x.wall for x in q["ours"]])),
            secs(med([x.cpu for x in q["ours"]])),
            "-", secs(med([x.wall for x in q["psql"]])), "-", vs_psql, mib(max(x.rss_kib for x in q["ours"])),
        ])
        targets.append(f"push {s}x {r_psql:.2f}x of psql -f + verification: {'met' if r_psql <= 1.0 else 'MISSED'}")
    if rows:
        print(table(
            ["step", "scale", "data", "runs", "ours", "our CPU", "pg_dump", "\\copy or psql -f", "ours/pg_dump", "ours/(\\copy or psql -f)", "peak RSS (ours)"],
            rows,
        ))
        print("ratio: ratio of the medians (in brackets: lowest-highest ratio within one interleaved round);")
        print("our CPU: user + system time of the sandbox process (Postgres's own work is not in it)")
        print("pull: pg_dump --data-only -t <each pulled table> -f FILE; \\copy: one psql running \\copy (SELECT * FROM t) TO FILE per table.")
        for s in scales:
            q = results[s].get("push")
            if q:
                print(f"push {s}x: vs {q['how']}; each on a freshly loaded database (load excluded).")
                if q["why_not_own"]:
                    print(f"  (`sandbox diff --sql` does not apply as written: {q['why_not_own']})")
        print()

    with_rehearse = [s for s in scales if results[s].get("rehearse")]
    if with_rehearse:
        phase_ids = [ph["id"] for ph in results[with_rehearse[0]]["rehearse"][0].report["phases"]]
        rows = []
        for s in with_rehearse:
            runs = results[s]["rehearse"]
            per = {pid: med([next(ph["millis"] for ph in r.report["phases"] if ph["id"] == pid) for r in runs]) for pid in phase_ids}
            total = med([r.report["millis"] for r in runs])
            rest = med([r.report["millis"] - sum(ph["millis"] for ph in r.report["phases"]) for r in runs])
            rows.append(
                [f"{s}x", len(runs)] + [f"{per[p]:.1f}" for p in phase_ids]
                + [f"{rest:.1f}", f"{total:.1f}", secs(med([r.wall for r in runs])), mib(max(r.rss_kib for r in runs))]
            )
        print("rehearse, ms per phase as `rehearse --json` reports them; 'outside phases' = integrity re-checksum of every")
        print("pulled table, staging copies, verification queries, guards, staged checksums, report tables")
        print(table(["scale", "runs"] + [f"phase {p}" for p in phase_ids] + ["outside phases", "total", "process wall", "peak RSS"], rows))
        print()

    if loop:
        total = med([sum(x) for x in loop])
        print(
            f"loop at 1x (pull + rehearse + push --confirm, default plan, fresh database, {len(loop)} runs): {secs(total)} "
            f"(pull {secs(med([x[0] for x in loop]))}, rehearse {secs(med([x[1] for x in loop]))}, "
            f"push {secs(med([x[2] for x in loop]))}); the seed plan's 50 minutes / this = {SEED_PLAN_SECONDS / total:,.0f}x"
        )
        targets.append(f"loop 1x under 3 s: {'met' if total < 3 else 'MISSED'} on this machine")
        print()

    print("memory, peak RSS of the sandbox process (max over runs):")
    for step in ("pull", "push"):
        figs = {s: max(x.rss_kib for x in results[s][step]["ours"]) for s in scales if results[s].get(step) and results[s][step]["ours"]}
        if not figs:
            continue
        line = ", ".join(f"{s}x {mib(v)}" for s, v in figs.items())
        if 10 in figs and 100 in figs:
            flat = figs[100] / figs[10]
            line += f"; 100x/10x = {flat:.2f}"
            targets.append(
                f"{step} memory flat 10x->100x and < 100 MiB: "
                f"{'met' if flat < 1.15 and figs[100] < 100 * 1024 else 'MISSED'}"
            )
        print(f"  {step}: {line}")
    print()
    for s in scales:
        snap = results[s]["pull"]["snapshot_bytes"] / 2**20
        print(f"{s}x: fixtures load {secs(results[s]['load'])} (excluded from every figure), snapshot {snap:.0f} MiB")
    print()
    print("targets (on ratios; nothing here fails on an absolute time):")
    for t in targets:
        print(f"  {t}")


def report_live(scales, results):
    print()
    print("a live, remote database (issue 11): through `sandbox latency-proxy` (rtt 0 = the proxy without delay or cap);")
    print("every pair interleaved in this run; times are medians; app = one psql session next to the database running")
    print("its statement every 20 ms from 1 s before the push to 0.5 s after it, vs the same app as long without a push")
    print("(and, for prompts, beside `psql -f` of the same script over the same link)")
    rows = []
    targets = []
    for s in scales:
        live = results[s].get("live")
        if not live:
            continue
        for rtt, r in live.items():
            link = f"{rtt} ms" + (f", {r['mbit']:g} Mbit/s" if r["mbit"] else "")
            vs_dump, r_dump = ratio_text(r["pull"]["ours"], r["pull"]["pg_dump"])
            vs_psql, r_psql = ratio_text(r["push"]["ours"], r["push"]["psql"])
            rec = med(r["push"]["received"]) if r["push"]["received"] else 0
            ap, aj = r["apps"]["prompts"], r["apps"]["jtbd_library"]
            ar = r["apps"].get("jtbd_library reader")
            rows.append([
                f"{s}x", link,
                f"{secs(med([x.wall for x in r['pull']['ours']]))} / {secs(med([x.wall for x in r['pull']['pg_dump']]))} = {vs_dump}",
                f"{secs(med([x.wall for x in r['push']['ours']]))} / {secs(med([x.wall for x in r['push']['psql']]))} = {vs_psql}",
                f"{rec / 1e6:.2f} MB",
                f"{secs(max(ap['during']))} vs {secs(max(ap['alone']))}"
                + (f" (beside psql -f: {secs(max(ap['beside_psql']))})" if ap.get("beside_psql") else ""),
                f"{secs(max(aj['during']))} vs {secs(max(aj['alone']))} (push {secs(med(aj['push']))})",
                f"{secs(max(ar['during']))} vs {secs(max(ar['alone']))} (push {secs(med(ar['push']))})" if ar else "-",
            ])
            targets.append(f"{s}x {link}: push {r_psql:.2f}x psql -f: {'met' if r_psql <= 1.0 else 'MISSED'}; "
                           f"pull {r_dump:.2f}x pg_dump: {'met' if r_dump <= 1.0 else 'MISSED'}; "
                           f"push received {rec / 1e6:.2f} MB{' (<= 5 MB: met)' if rec <= 5e6 else ' (> 5 MB: MISSED)'}; "
                           f"prompts app +{(max(ap['during']) - max(ap['alone'])) * 1000:.0f} ms "
                           f"{'met' if max(ap['during']) - max(ap['alone']) <= 0.1 else 'MISSED'} (<= +100 ms); "
                           f"jtbd_library app {secs(max(aj['during']))} vs push {secs(med(aj['push']))}: "
                           f"{'met' if max(aj['during']) <= med(aj['push']) else 'MISSED'}")
    print(table(["scale", "link", "pull / pg_dump --data-only", "push --confirm / psql -f", "push received",
                 "prompts app longest wait: push vs none", "jtbd_library app longest wait: push vs none",
                 "jtbd_library reader longest wait: push vs none"], rows))
    print("what the prompts app's backend waited on during the pushes (pg_stat_activity, sampled every 10 ms;")
    print("a lock of the push's would show as Lock):")
    for s in scales:
        for rtt, r in (results[s].get("live") or {}).items():
            w = r["apps"]["prompts"].get("waits") or {}
            shown = ", ".join(f"{k} {v}" for k, v in sorted(w.items(), key=lambda kv: -kv[1])) or "no wait sampled"
            print(f"  {s}x {rtt} ms: {shown}; Lock samples: {sum(v for k, v in w.items() if k.startswith('Lock:'))}")
    print("targets (issue 11):")
    for t in targets:
        print(f"  {t}")


if __name__ == "__main__":
    main()
