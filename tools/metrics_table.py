#!/usr/bin/env python3
"""The README's metrics table, generated from a live /metrics scrape.

Reads the Prometheus text exposition on stdin and prints one Markdown row
per hvmm_* family: name, type, labels, and the family's HELP text (the
code's own words). The table sits in README.md between the markers
<!-- metrics-table:begin --> and <!-- metrics-table:end -->.

  curl -s http://127.0.0.1:9464/metrics | tools/metrics_table.py
  ... | tools/metrics_table.py --check README.md    exit 1 if they differ
  ... | tools/metrics_table.py --update README.md   rewrite the block

tests/e2e/metrics_test.sh runs --check on a scrape of a busy daemon.
"""
import re
import sys

BEGIN = "<!-- metrics-table:begin -->"
END = "<!-- metrics-table:end -->"
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"')


def families(text):
    fams = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            fams.setdefault(name, {"labels": set()})["help"] = help_text
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            fams.setdefault(name, {"labels": set()})["type"] = kind
        elif line and not line.startswith("#"):
            m = SAMPLE.match(line)
            if not m:
                continue
            name = m.group(1)
            if name not in fams:
                for suffix in ("_bucket", "_sum", "_count"):
                    if name.endswith(suffix) and name[: -len(suffix)] in fams:
                        name = name[: -len(suffix)]
            labels = {l for l in LABEL.findall(m.group(3) or "")}
            fams.setdefault(name, {"labels": set()})["labels"] |= labels - {"le", "quantile"}
    return fams


def table(fams):
    rows = ["| Metric | Type | Labels | Meaning |", "|---|---|---|---|"]
    for name in sorted(n for n in fams if n.startswith("hvmm_")):
        f = fams[name]
        labels = ", ".join(f"`{l}`" for l in sorted(f["labels"])) or "–"
        help_text = f.get("help", "").replace("|", "\\|")
        rows.append(f"| `{name}` | {f.get('type', '?')} | {labels} | {help_text} |")
    return "\n".join(rows) + "\n"


def main():
    generated = table(families(sys.stdin.read()))
    if len(sys.argv) == 1:
        sys.stdout.write(generated)
        return 0
    if len(sys.argv) != 3 or sys.argv[1] not in ("--check", "--update"):
        sys.stderr.write(__doc__)
        return 2
    path = sys.argv[2]
    text = open(path).read()
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        sys.stderr.write(f"{path}: no {BEGIN} ... {END} block\n")
        return 1
    current = text[start + len(BEGIN):end].strip("\n") + "\n"
    if sys.argv[1] == "--update":
        with open(path, "w") as out:
            out.write(text[: start + len(BEGIN)] + "\n" + generated + text[end:])
        return 0
    if current != generated:
        sys.stderr.write(
            f"{path}: the metrics table differs from the daemon's metrics.\n"
            "Regenerate it (README.md, 'Metrics'). Expected:\n" + generated)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
