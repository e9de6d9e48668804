"""tap.py - run named checks as TAP, for the lint scripts.

Each rule is (what, check): check() returns a list of problems, each
printed as one line on stderr; the rule is "ok" when the list is empty.
"""
import sys


def run_rules(rules):
    """Print the TAP plan and one line per rule; 1 if any failed, else 0."""
    print("1..%d" % len(rules))
    failed = False
    for k, (what, check) in enumerate(rules, 1):
        problems = check()
        for p in problems:
            print(p, file=sys.stderr)
        sys.stderr.flush()
        print("%s %d - %s" % ("not ok" if problems else "ok", k, what))
        sys.stdout.flush()
        failed |= bool(problems)
    return 1 if failed else 0
