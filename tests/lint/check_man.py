#!/usr/bin/python3
"""The README, the man pages and `phifs help` cannot disagree.  Run by
meson (suite lint) as a TAP test:

    python3 tests/lint/check_man.py PHIFS README.md PAGE...

The binary is the one source: its help is parsed as doc/gen_man.py
parses it to write the man pages (the same functions, imported).

Rule 1, commands.  The fenced block of the README's "Using it" section
has one line per command, "phifs NAME ...": the same names as
`phifs help` lists, and each line starts with that command's usage line
(`phifs help NAME`, after "usage: "), followed by nothing or a blank.

Rule 2, configuration keys.  The README's configuration table (the one
whose header is "| section | key | meaning |") names, in its key column,
each key of `phifs help config` under the same section, and no other.
An empty section column continues the section above.

Rule 3, one per PAGE: `man --warnings -l PAGE` prints no warning (groff
and man are silent on stderr).

Prints one line per problem on stderr; exits 1 if there is any.
"""
import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True     # no __pycache__ in doc/
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "doc"))
import gen_man  # noqa: E402  (doc/gen_man.py: the parse of the help)
from tap import run_rules  # noqa: E402  (tests/lint/tap.py)

CODE_SPAN = re.compile(r"`([^`]+)`")


def section_lines(readme, title):
    """The lines of the README section "## title" (to the next "## ")."""
    out, inside = [], False
    with open(readme, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("## "):
                inside = line[3:].strip() == title
                continue
            if inside:
                out.append(line)
    return out


def readme_usages(readme):
    """{command: [lines]} of the fenced block(s) of "Using it"."""
    out, fenced = {}, False
    for line in section_lines(readme, "Using it"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        m = re.match(r"phifs ([\w-]+)", line)
        if fenced and m:
            out.setdefault(m.group(1), []).append(line)
    return out


def check_commands(phifs, readme):
    problems = []
    have = readme_usages(readme)
    want = [name for name, _ in gen_man.commands(phifs)]
    for name in want:
        if name not in have:
            problems.append("README.md: Using it lacks the command %s "
                            "(phifs help lists it)" % name)
            continue
        usage, _ = gen_man.command_help(phifs, name)
        if usage is None:
            continue
        if not any(re.match(re.escape(usage) + r"(\s|$)", line)
                   for line in have[name]):
            problems.append("README.md: Using it: no line starts with the "
                            "usage of phifs help %s: %s" % (name, usage))
    for name in sorted(set(have) - set(want)):
        problems.append("README.md: Using it names the command %s, which "
                        "phifs help does not list" % name)
    return problems


def readme_keys(readme):
    """{section: set of keys} of the README's configuration table."""
    out, in_table, section = {}, False, None
    with open(readme, encoding="utf-8") as f:
        for line in f:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not line.lstrip().startswith("|"):
                in_table = False
                continue
            if [c.lower() for c in cells[:3]] == ["section", "key",
                                                  "meaning"]:
                in_table = True
                continue
            if not in_table or set(cells[0]) <= set("-: ") and \
                    set(cells[1]) <= set("-: "):
                continue
            spans = CODE_SPAN.findall(cells[0])
            if spans:
                section = re.sub(r"\s+", " ", spans[0])
            for key in CODE_SPAN.findall(cells[1]):
                out.setdefault(section, set()).add(key)
    return out


def check_keys(phifs, readme):
    problems = []
    sections, _ = gen_man.config_keys(phifs)
    want = {s: {k[0] for k in keys} for s, _, keys in sections}
    have = readme_keys(readme)
    if not have:
        return ["README.md: no configuration table "
                "(| section | key | meaning |)"]
    for s in sorted(set(want) | set(have)):
        for k in sorted(want.get(s, set()) - have.get(s, set())):
            problems.append("README.md: the configuration table lacks %s "
                            "key %s (phifs help config has it)" % (s, k))
        for k in sorted(have.get(s, set()) - want.get(s, set())):
            problems.append("README.md: the configuration table has %s key "
                            "%s, which phifs help config does not" % (s, k))
    return problems


def check_page(page):
    env = dict(os.environ, LC_ALL="C.UTF-8", MANPAGER="cat", PAGER="cat",
               MANWIDTH="80")
    p = subprocess.run(["man", "--warnings", "-l", page],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, env=env, check=False)
    name = os.path.basename(page)
    if p.returncode != 0 or p.stderr.strip():
        return ["%s: man --warnings: exit %d: %s" % (name, p.returncode,
                                                    p.stderr.strip())]
    if not p.stdout.strip():
        return ["%s: man printed nothing" % name]
    return []


def main(argv):
    if len(argv) < 3:
        print("usage: check_man.py PHIFS README.md PAGE...", file=sys.stderr)
        return 2
    phifs, readme, pages = argv[1], argv[2], argv[3:]
    rules = [("the README lists the commands and usages of phifs help",
              lambda: check_commands(phifs, readme)),
             ("the README lists the keys of phifs help config",
              lambda: check_keys(phifs, readme))]
    for page in pages:
        rules.append(("man --warnings is silent on %s"
                      % os.path.basename(page),
                      lambda page=page: check_page(page)))
    return run_rules(rules)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
