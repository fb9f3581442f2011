#!/usr/bin/env python3
"""Summary of a CTest run from its JUnit file (ctest --output-junit FILE): how many tests
passed, were skipped and failed, and every skipped test with the reason it printed.

    python3 tools/ctest_summary.py FILE [--label NAME]

Reasons are the lines the tests print when they skip: "[doctest] SKIPPED: <case>: <reason>"
(tests/doctest_main.cpp), "SKIPPED: <test>: <reason>" (tests/unittest_support.py) and
"SKIPPED: <reason>" (a Python file that skips as a whole). Standard library only.
Exit status 0 (the summary does not judge; CTest's own status does).
"""
import argparse
import collections
import re
import sys
import xml.etree.ElementTree as ET

SKIP_LINE = re.compile(r"^(?:\[doctest\] )?SKIPPED: (.*)$")


def reasons(name, output):
    """The skip reasons a test printed, without its test case / method name in front."""
    case = name.split(": ", 1)[1] if ": " in name else ""
    found = []
    for line in output.splitlines():
        m = SKIP_LINE.match(line.strip())
        if not m:
            continue
        text = m.group(1)
        if case and text.startswith(case + ": "):
            text = text[len(case) + 2:]
        elif case and text.startswith(case + ".") and ": " in text:
            text = text.split(": ", 1)[1]  # a method of the class this test runs
        if text not in found:
            found.append(text)
    return found


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("junit")
    ap.add_argument("--label", default="ctest")
    a = ap.parse_args()
    try:
        root = ET.parse(a.junit).getroot()
    except (OSError, ET.ParseError) as e:
        print("%s: no test summary (%s)" % (a.label, e))
        return 0
    passed, failed, skipped, not_run = [], [], [], []
    for tc in root.iter("testcase"):
        name = tc.get("name", "?")
        out = tc.findtext("system-out") or ""
        status = tc.get("status", "")
        if status == "notrun":
            sk = tc.find("skipped")
            message = sk.get("message", "") if sk is not None else ""
            if message.startswith("SKIP_RETURN_CODE") or message.startswith("SKIP_REGULAR_EXPRESSION"):
                skipped.append((name, reasons(name, out)))
            else:
                not_run.append((name, message))
        elif tc.find("failure") is not None or status == "fail":
            failed.append(name)
        else:
            passed.append(name)
    total = len(passed) + len(failed) + len(skipped) + len(not_run)
    print("%s: %d tests: %d passed, %d skipped, %d failed, %d not run" % (a.label, total, len(passed), len(skipped),
                                                                         len(failed), len(not_run)))
    if skipped:
        print("%s: skipped tests (%d), with the reason each printed:" % (a.label, len(skipped)))
        for name, why in skipped:
            print("  %s -- %s" % (name, "; ".join(why) if why else "(printed no reason)"))
        by_reason = collections.Counter()
        for _, why in skipped:
            for w in why or ["(printed no reason)"]:
                by_reason[w] += 1
        print("%s: skip reasons (number of tests):" % a.label)
        for w, n in by_reason.most_common():
            print("  %3d  %s" % (n, w))
    for name, message in not_run:
        print("%s: not run: %s (%s)" % (a.label, name, message))
    for name in failed:
        print("%s: failed: %s" % (a.label, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
