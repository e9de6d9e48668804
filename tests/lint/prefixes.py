#!/usr/bin/python3
"""Check that every symbol a static library exports carries its prefix.

usage: prefixes.py LIBRARY PREFIX [PREFIX...]

Static libraries are linked together into one program: a non-static
function or variable of one module that is not named for it may collide
with another's, or be called from where it was never meant to be.  `nm`
lists the library's defined external symbols (code, data, bss, read-only
data); each must start with one of the prefixes (names starting with
"__", reserved to the compiler and its sanitizers, are not ours).
Prints TAP: one case per object file, naming each symbol that does not.
"""
import os
import re
import subprocess
import sys


def main():
    lib, prefixes = sys.argv[1], tuple(sys.argv[2:])
    out = subprocess.run(["nm", "-A", "--defined-only", lib],
                         capture_output=True, text=True, check=True).stdout
    bad = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 3 or parts[-2] not in "TDBRGSVW" or \
                not parts[-2].isupper():
            continue
        obj = re.sub(r"\.c\.o$", ".c",
                     os.path.basename(parts[0].split(":")[-2]))
        bad.setdefault(obj, [])
        # "__" names are the compiler's and the sanitizers' own
        if parts[-1].startswith("__"):
            continue
        if not parts[-1].startswith(prefixes):
            bad[obj].append(parts[-1])
    print(f"1..{len(bad)}")
    failed = 0
    for n, obj in enumerate(sorted(bad), 1):
        if bad[obj]:
            failed += 1
            print(f"not ok {n} - {obj}")
            for sym in sorted(bad[obj]):
                print(f"# {obj}: {sym} does not start with "
                      f"{' or '.join(prefixes)}")
        else:
            print(f"ok {n} - {obj}: every symbol starts with "
                  f"{' or '.join(prefixes)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
