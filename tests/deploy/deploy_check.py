"""Structure of deploy/: what no cluster or image build can check here.

- yamllint --strict passes on every YAML file (deploy/.yamllint).
- Kubernetes (hvmmd.yaml, servicemonitor.yaml): one DaemonSet whose hvmmd
  container listens on a Unix socket inside a hostPath volume; startup,
  readiness and liveness probes exec `hvmmctl health` on that socket;
  every container has CPU and memory requests and limits; the grace period
  covers --shutdown-grace-seconds plus the drain; the metrics port is the
  one --metrics-addr serves, named in the Service, the ServiceMonitor and
  the scrape annotations; the pod runs as non-root with a read-only root
  and no privilege escalation; the image tag is hvmm's version. hvmmd
  itself accepts the container's args (started with them, socket and port
  moved to temporary ones).
- The container file: a build and a runtime stage, the OCI labels, a
  numeric non-root USER, ENTRYPOINT hvmmd (exec form) with the same socket
  as the DaemonSet, a HEALTHCHECK with hvmmctl health, EXPOSE of the port.
- Alert rules: each has severity and a runbook_url whose anchor is a
  section of docs/runbook.md with Meaning, Impact, Diagnosis, Mitigation.
- The Grafana dashboard is valid JSON with queries on every panel, and the
  provisioning file points where its comment says to copy it.

Usage: deploy_check.py DEPLOY_DIR RUNBOOK BUILD_INFO_H HVMMD TMPDIR
"""
import json
import os
import re
import subprocess
import sys
import time

import yaml

deploy, runbook, build_info, hvmmd, tmp = sys.argv[1:6]
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL:", msg)
    return cond


# yamllint.
r = subprocess.run(["yamllint", "--strict", "-c", os.path.join(deploy, ".yamllint"),
                    deploy], capture_output=True, text=True)
check(r.returncode == 0, f"yamllint: {r.stdout}{r.stderr}")

version = re.search(r'kHvmmVersion\[\] = "([^"]+)"', open(build_info).read()).group(1)

# Kubernetes.
docs = [d for f in ("hvmmd.yaml", "servicemonitor.yaml")
        for d in yaml.safe_load_all(open(os.path.join(deploy, "kubernetes", f))) if d]
by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], []).append(d)
ds = by_kind.get("DaemonSet", [None])[0]
check(ds is not None and len(by_kind["DaemonSet"]) == 1, "one DaemonSet")
pod = ds["spec"]["template"]
spec = pod["spec"]
check(ds["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items(),
      "the DaemonSet's selector matches its pods")
containers = {c["name"]: c for c in spec["containers"]}
hv = containers.get("hvmmd")
check(hv is not None, "a container named hvmmd")
args = hv.get("args", [])
flag = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in args if "=" in a}
listen = flag.get("--listen", "")
check(listen.startswith("unix:"), f"--listen is a Unix socket: {listen}")
sock = listen[len("unix:"):]
volumes = {v["name"]: v for v in spec.get("volumes", [])}
mounts = [m for m in hv.get("volumeMounts", [])
          if sock.startswith(m["mountPath"].rstrip("/") + "/")]
check(len(mounts) == 1 and "hostPath" in volumes.get(mounts[0]["name"], {}),
      f"the socket {sock} lies in a hostPath volume")
health = ["/usr/local/bin/hvmmctl", "--addr", listen, "--timeout", "3", "health"]
for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
    p = hv.get(probe, {})
    check(p.get("exec", {}).get("command") == health,
          f"{probe} execs `hvmmctl --addr {listen} ... health`: {p}")
    check(p.get("timeoutSeconds", 1) > 3, f"{probe}: timeout above hvmmctl's 3 s")
for c in spec["containers"] + spec.get("initContainers", []):
    res = c.get("resources", {})
    for kind in ("requests", "limits"):
        check({"cpu", "memory"} <= set(res.get(kind, {})),
              f"{c['name']}: {kind} for cpu and memory")
    sc = c.get("securityContext", {})
    check(sc.get("allowPrivilegeEscalation") is False,
          f"{c['name']}: allowPrivilegeEscalation false")
    check(sc.get("readOnlyRootFilesystem") is True, f"{c['name']}: read-only root")
    check("ALL" in sc.get("capabilities", {}).get("drop", []), f"{c['name']}: drops ALL")
    check(c["image"] == f"hvmm:{version}", f"{c['name']}: image hvmm:{version}, not {c['image']}")
check(spec["securityContext"].get("runAsNonRoot") is True and
      hv.get("securityContext", {}).get("runAsNonRoot", True) is not False,
      "hvmmd runs as non-root")
grace = int(flag.get("--shutdown-grace-seconds", "10"))
check(spec.get("terminationGracePeriodSeconds", 30) >= grace + 10,
      f"terminationGracePeriodSeconds covers the {grace} s grace and the drain")
metrics_port = int(flag.get("--metrics-addr", "127.0.0.1:9464").rsplit(":", 1)[1])
ports = {p["name"]: p["containerPort"] for p in hv.get("ports", [])}
check(ports.get("metrics") == metrics_port, f"containerPort 'metrics' is {metrics_port}")
check(not flag.get("--metrics-addr", "").startswith("127."),
      "in a pod, metrics must listen beyond loopback")
ann = pod["metadata"].get("annotations", {})
check(ann.get("prometheus.io/scrape") == "true" and
      ann.get("prometheus.io/port") == str(metrics_port) and
      ann.get("prometheus.io/path") == "/metrics", "scrape annotations")
svc = by_kind.get("Service", [None])[0]
check(svc is not None and svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items(),
      "the Service selects the pods")
svc_ports = {p["name"]: p for p in svc["spec"]["ports"]}
check(svc_ports.get("metrics", {}).get("targetPort") == "metrics", "Service port metrics")
sm = by_kind.get("ServiceMonitor", [None])[0]
check(sm is not None and sm["spec"]["endpoints"][0]["port"] in svc_ports and
      sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items(),
      "the ServiceMonitor selects the Service and its port")
relabels = sm["spec"]["endpoints"][0].get("relabelings", []) if sm else []
check(any(r.get("targetLabel") == "job" and r.get("replacement") == "hvmm" for r in relabels),
      "the ServiceMonitor names the job 'hvmm', as the alerts expect")
init = {c["name"]: c for c in spec.get("initContainers", [])}
sock_dir = os.path.dirname(sock)
check(any(sock_dir in " ".join(c.get("command", [])) and "0700" in " ".join(c.get("command", []))
          for c in init.values()), f"an init container makes {sock_dir} 0700")

# hvmmd accepts the container's args.
os.makedirs(os.path.join(tmp, "k"), exist_ok=True)
run_args = [a for a in args if not a.startswith(("--listen=", "--metrics-addr="))]
log = os.path.join(tmp, "k8s-args.log")
p = subprocess.Popen([hvmmd, *run_args, f"--listen=unix:{tmp}/k/s/hvmm.sock",
                      "--metrics-addr=127.0.0.1:0"],
                     stdout=open(log, "w"), stderr=subprocess.STDOUT)
deadline = time.monotonic() + 120
while time.monotonic() < deadline and p.poll() is None:
    if "serving hvmm.v1" in open(log).read():
        break
    time.sleep(0.05)
started = "serving hvmm.v1" in open(log).read()
if p.poll() is None:
    p.terminate()
rc = p.wait(timeout=120)
check(started and rc == 0, f"hvmmd with the DaemonSet's args: {open(log).read()}")

# Container file.
cf = open(os.path.join(deploy, "container", "Containerfile")).read()
stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", cf, re.M)
check(len(stages) == 2 and stages[0][1] == "build", f"two stages, the first 'build': {stages}")
for label in ("title", "description", "version", "revision", "licenses",
              "documentation", "base.name"):
    check(f"org.opencontainers.image.{label}=" in cf, f"OCI label {label}")
user = re.findall(r"^USER\s+(\S+)", cf, re.M)
check(user and re.fullmatch(r"[1-9][0-9]*(:[0-9]+)?", user[-1]), f"numeric non-root USER: {user}")
check(re.search(r'^ENTRYPOINT \["/usr/local/bin/hvmmd"\]', cf, re.M), "ENTRYPOINT hvmmd, exec form")
cmd = re.search(r"^CMD (\[.*\])", cf, re.M)
check(cmd and f"--listen={listen}" in json.loads(cmd.group(1)),
      "the image's CMD listens where the DaemonSet does")
check(re.search(r"HEALTHCHECK .*\n?.*hvmmctl.*health", cf), "HEALTHCHECK with hvmmctl health")
check(re.search(rf"^EXPOSE {metrics_port}$", cf, re.M), f"EXPOSE {metrics_port}")
check(f"ARG VERSION={version}" in cf, f"ARG VERSION={version}")

# Alerts and the runbook.
rules = [r for g in yaml.safe_load(open(os.path.join(deploy, "prometheus", "alerts.yml")))["groups"]
         for r in g["rules"]]
book = open(runbook).read()
sections = {m.group(1).lower(): m.start() for m in re.finditer(r"^## (\S+)$", book, re.M)}
for r in rules:
    check(r.get("labels", {}).get("severity") in ("critical", "warning"),
          f"{r['alert']}: severity")
    url = r.get("annotations", {}).get("runbook_url", "")
    anchor = url.split("#", 1)[-1]
    check(url.startswith("docs/runbook.md#") and anchor in sections,
          f"{r['alert']}: runbook_url {url} names a runbook section")
    if anchor in sections:
        start = sections[anchor]
        nxt = min([s for s in sections.values() if s > start] + [len(book)])
        body = book[start:nxt]
        for part in ("Meaning", "Impact", "Diagnosis", "Mitigation"):
            check(f"**{part}.**" in body, f"runbook {anchor}: {part}")

# Grafana.
dash = json.load(open(os.path.join(deploy, "grafana", "hvmm-dashboard.json")))
check(all(p.get("targets") and all(t.get("expr") for t in p["targets"]) for p in dash["panels"]),
      "every dashboard panel has queries")
prov = yaml.safe_load(open(os.path.join(deploy, "grafana", "provisioning", "dashboards", "hvmm.yaml")))
check(prov["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/hvmm",
      "dashboard provisioning path")

if failures:
    print(f"deploy_check: {len(failures)} failures")
    sys.exit(1)
print("deploy_check: ok")
