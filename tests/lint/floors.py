#!/usr/bin/python3
"""Check that calls inside a module only go down its floors.

usage: floors.py README LIBRARY

README is a module's README.md; its floors are the table rows that start
with a floor number:

    | 3 nodes | `cache_node.c` | ... |

Every `.c` file named in such a row is on that floor.  LIBRARY is the
module's static library; `nm` tells, for each of its object files, the
functions it defines and the ones it calls.  A call from a file to a
function defined in a file on a higher floor fails the check, and so does
a source file of the library that no floor names.  Prints TAP: one case
per file, naming each call that runs up.
"""
import os
import re
import subprocess
import sys


def floors_of(readme):
    floor = {}
    for line in open(readme, encoding="utf-8"):
        m = re.match(r"^\|\s*(\d+)\b[^|]*\|([^|]*)\|", line)
        if not m:
            continue
        for name in re.findall(r"`([A-Za-z0-9_]+)\.c`", m.group(2)):
            floor[name] = int(m.group(1))
    return floor


def symbols(lib):
    out = subprocess.run(["nm", "-A", lib], capture_output=True, text=True,
                         check=True).stdout
    defs, uses = {}, {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        obj = os.path.basename(parts[0].split(":")[-2])
        obj = re.sub(r"\.c\.o$", "", obj)
        uses.setdefault(obj, set())
        if parts[-2] == "T":
            defs[parts[-1]] = obj
        elif parts[-2] == "U":
            uses[obj].add(parts[-1])
    return defs, uses


def main():
    readme, lib = sys.argv[1], sys.argv[2]
    floor = floors_of(readme)
    defs, uses = symbols(lib)
    objs = sorted(uses)
    print(f"1..{len(objs)}")
    failed = 0
    for n, obj in enumerate(objs, 1):
        problems = []
        if obj not in floor:
            problems.append(f"{obj}.c is on no floor of {readme}")
        else:
            for sym in sorted(uses[obj]):
                owner = defs.get(sym)
                if owner and owner != obj and owner in floor and \
                        floor[owner] > floor[obj]:
                    problems.append(f"{obj}.c (floor {floor[obj]}) calls "
                                    f"{sym}() of {owner}.c (floor "
                                    f"{floor[owner]})")
        if problems:
            failed += 1
            print(f"not ok {n} - {obj}.c")
            for p in problems:
                print(f"# {p}")
        else:
            print(f"ok {n} - {obj}.c calls only down")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
