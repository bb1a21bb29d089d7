#!/usr/bin/env python3
"""Prints 'N passed, N failed' for `bazel test --test_summary=short` runs.

Usage: summarize_tests.py LOG TESTLOGS_DIR [LOG TESTLOGS_DIR ...]

Each pair is one bazel run: its console output and a copy of its testlogs
directory. The counts of all runs are added up.

Counts GoogleTest cases from each reported target's test.xml. A target that
failed to build, timed out, or left no test.xml counts as one failed case.
Exits 1 if anything failed or no test ran.
"""
import os
import re
import sys
import xml.etree.ElementTree as ET

STATUS_RE = re.compile(
    r"^(//\S+)\s+(?:\(cached\)\s+)?(PASSED|FAILED|TIMEOUT|FLAKY|NO STATUS|"
    r"FAILED TO BUILD|SKIPPED|INCOMPLETE)\b")


def count_cases(xml_path):
    """Returns (passed, failed) test cases in a JUnit XML file."""
    root = ET.parse(xml_path).getroot()
    passed = failed = 0
    for case in root.iter("testcase"):
        if case.get("status") == "notrun" or case.find("skipped") is not None:
            continue
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        else:
            passed += 1
    return passed, failed


def count_run(log_path, testlogs):
    """Returns (passed, failed) for one bazel run."""
    passed = failed = 0
    seen = set()
    with open(log_path, errors="replace") as log:
        for line in log:
            m = STATUS_RE.match(line.strip())
            if not m or m.group(1) in seen:
                continue
            target, status = m.group(1), m.group(2)
            seen.add(target)
            xml_path = os.path.join(testlogs, target[2:].replace(":", "/"),
                                    "test.xml")
            cases = (0, 0)
            if status in ("PASSED", "FAILED", "FLAKY") and os.path.exists(xml_path):
                try:
                    cases = count_cases(xml_path)
                except ET.ParseError:
                    cases = (0, 0)
            p, f = cases
            if status in ("PASSED", "FLAKY"):
                if p + f == 0:
                    p = 1  # A passing target without cases (e.g. a script).
            elif f == 0:
                f = 1  # The target failed but no case says why.
            passed += p
            failed += f
    return passed, failed


def main():
    args = sys.argv[1:]
    if not args or len(args) % 2:
        sys.exit("usage: summarize_tests.py LOG TESTLOGS_DIR [LOG TESTLOGS_DIR ...]")
    passed = failed = 0
    for i in range(0, len(args), 2):
        p, f = count_run(args[i], args[i + 1])
        passed += p
        failed += f
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
