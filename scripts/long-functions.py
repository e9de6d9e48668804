#!/usr/bin/python3
"""List C functions longer than a limit (default 60 lines, body included).

usage: scripts/long-functions.py [--limit N] FILE.c...

A function starts at a line that begins a declaration at column 0 and is
followed by a line holding only "{"; it ends at the next line holding only
"}".  That is how this project writes every function (CONVENTIONS.md), so
no parser is needed.  Prints "lines file:line name" for each long one and
a last line with the count.
"""
import re
import sys


def functions(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    for i, line in enumerate(lines):
        if line != "{":
            continue
        head = i - 1
        while head > 0 and not re.match(r"^[A-Za-z_]", lines[head]):
            head -= 1
        m = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(", lines[head])
        if not m:
            continue
        end = i
        while end < len(lines) and lines[end] != "}":
            end += 1
        yield head + 1, m.group(1), end - head + 1


def main():
    args = sys.argv[1:]
    limit = 60
    if args[:1] == ["--limit"]:
        limit, args = int(args[1]), args[2:]
    count = 0
    for path in args:
        for line, name, length in functions(path):
            if length > limit:
                count += 1
                print(f"{length:5d} {path}:{line} {name}")
    print(f"{count} functions over {limit} lines")


if __name__ == "__main__":
    main()
