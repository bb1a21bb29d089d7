"""A real Prometheus scraping a busy hvmmd, with deploy/'s config and rules.

Starts `hvmmd --demo --demo-policy=assisted+rcu` (churn, grace periods,
flushes) and a client loop, then Debian's `prometheus` with
deploy/prometheus/prometheus.yml (scrape interval 1 s, the target moved to
hvmmd's free port, alerts.yml by absolute path). Through Prometheus' HTTP
API it waits until hvmm_walks_total and hvmm_flush_requests_total increase
and hvmm_grace_period_duration_seconds has observations, then runs every
query of every panel of deploy/grafana/hvmm-dashboard.json and requires
data from each, and checks that every rule evaluates cleanly and that no
safety alert fires. Every wait is bounded; everything started is stopped.

Usage: prometheus_check.py HVMMD HVMMCTL DEPLOY_DIR TMPDIR
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import yaml

hvmmd, hvmmctl, deploy, tmp = sys.argv[1:5]
LIMIT = float(os.environ.get("HVMM_PROMETHEUS_LIMIT", "240"))
RATE_WINDOW = "15s"  # $__rate_interval: 15 scrapes at 1 s.


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


procs = []


def start(args, log):
    p = subprocess.Popen(args, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    procs.append(p)
    return p


def stop_all():
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    for p in procs:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def fail(msg):
    print("FAIL:", msg)
    for name in ("hvmmd.log", "prometheus.log"):
        path = os.path.join(tmp, name)
        if os.path.exists(path):
            print(f"--- {name} (tail)")
            print("".join(open(path).readlines()[-20:]))
    stop_all()
    sys.exit(1)


def query(prom, expr):
    url = f"http://127.0.0.1:{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body}")
    return body["data"]["result"]


def wait_for(prom, what, check, deadline):
    last = None
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                fail(f"{p.args[0]} exited {p.returncode} while waiting for {what}")
        try:
            ok, last = check()
            if ok:
                return
        except (OSError, RuntimeError) as e:
            last = e
        time.sleep(0.5)
    fail(f"timed out waiting for {what} (last: {last})")


metrics_port, prom_port = free_port(), free_port()
sock = os.path.join(tmp, "h", "hvmm.sock")
start([hvmmd, "--demo", "--demo-policy=assisted+rcu", "--demo-seconds=600",
       f"--listen=unix:{sock}", f"--metrics-addr=127.0.0.1:{metrics_port}",
       "--pcpus=2", "--frames=65536"], os.path.join(tmp, "hvmmd.log"))
# RPC traffic for the RPC panels: a client loop (the shell's `sleep` paces
# it; nothing waits on it).
start(["/bin/sh", "-c",
       f"while :; do {hvmmctl} --addr unix:{sock} --timeout 5 domain list "
       f">/dev/null 2>&1; {hvmmctl} --addr unix:{sock} --timeout 5 domain get 999999 "
       f">/dev/null 2>&1; sleep 0.5; done"], os.path.join(tmp, "client.log"))

config = yaml.safe_load(open(os.path.join(deploy, "prometheus", "prometheus.yml")))
config["global"]["scrape_interval"] = "1s"
config["global"]["evaluation_interval"] = "1s"
config["rule_files"] = [os.path.join(deploy, "prometheus", "alerts.yml")]
jobs = [j for j in config["scrape_configs"] if j["job_name"] == "hvmm"]
if len(jobs) != 1:
    fail("deploy/prometheus/prometheus.yml has no single job 'hvmm'")
jobs[0]["static_configs"] = [{"targets": [f"127.0.0.1:{metrics_port}"]}]
config_path = os.path.join(tmp, "prometheus.yml")
yaml.safe_dump(config, open(config_path, "w"))
start(["prometheus", f"--config.file={config_path}",
       f"--storage.tsdb.path={os.path.join(tmp, 'data')}",
       f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
      os.path.join(tmp, "prometheus.log"))

deadline = time.monotonic() + LIMIT


def nonempty(expr):
    return lambda: (bool(query(prom_port, expr)), expr)


wait_for(prom_port, "the hvmm target up",
         nonempty('up{job="hvmm"} == 1'), deadline)
wait_for(prom_port, "hvmm_walks_total increasing",
         nonempty("rate(hvmm_walks_total[5s]) > 0"), deadline)
wait_for(prom_port, "hvmm_flush_requests_total increasing",
         nonempty("sum(rate(hvmm_flush_requests_total[5s])) > 0"), deadline)
wait_for(prom_port, "grace-period observations",
         nonempty("hvmm_grace_period_duration_seconds_count > 0"), deadline)
print("prometheus_check: walks and flushes increasing, grace periods observed")

dashboard = json.load(open(os.path.join(deploy, "grafana", "hvmm-dashboard.json")))
exprs = []
for panel in dashboard["panels"]:
    for target in panel["targets"]:
        expr = target["expr"].replace("$__rate_interval", RATE_WINDOW)
        expr = expr.replace("$instance", ".*")
        exprs.append((panel["title"], expr))
if len(exprs) < 10:
    fail(f"the dashboard has only {len(exprs)} queries")


def all_panels():
    empty = [f"{t}: {e}" for t, e in exprs if not query(prom_port, e)]
    return (not empty, empty)


wait_for(prom_port, "data for every dashboard query", all_panels, deadline)
print(f"prometheus_check: all {len(exprs)} dashboard queries return data")

# Every rule evaluates without error; with only assisted+rcu running, no
# safety alert fires.
def rules_healthy():
    with urllib.request.urlopen(
            f"http://127.0.0.1:{prom_port}/api/v1/rules", timeout=10) as r:
        groups = json.load(r)["data"]["groups"]
    rules = [rule for g in groups for rule in g["rules"]]
    bad = [f"{r['name']}: {r.get('lastError')}" for r in rules
           if r.get("health") != "ok"]
    return (len(rules) >= 5 and not bad, bad or f"{len(rules)} rules")


wait_for(prom_port, "every rule evaluated healthy", rules_healthy, deadline)
firing = query(prom_port, 'ALERTS{alertname="HvmmSafetyViolation"}')
if firing:
    fail(f"HvmmSafetyViolation fires under assisted+rcu: {firing}")
stop_all()
hvmmd_rc = procs[0].returncode
if hvmmd_rc != 0:
    fail(f"hvmmd exited {hvmmd_rc} after SIGINT")
print("prometheus_check: ok")
