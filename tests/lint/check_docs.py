#!/usr/bin/python3
"""Docs that cannot go stale: READMEs name every .c file, public
functions carry a comment.  Run by meson (suite lint) as a TAP test:

    python3 tests/lint/check_docs.py [SOURCE_ROOT]

prints "1..2", one "ok"/"not ok" line per rule, and on stderr one line
per thing missing ("PATH: what is missing"); exits 1 if anything is.

Rule 1, READMEs.  Every folder that holds .c files is described by a
README.md: its own, or else the nearest one in a folder above it (the
repository's top README, which is for users, does not count).  That
README lists each of the folder's .c files on a table row ("| `x.c` |
what it owns |") or a list item ("- `x.c` - what it owns"): the file,
named by its path from the README's folder, is the first `code` span of
the line, and the line says something more (at least two words).  Every
`name.c` a README names in a code span (outside fenced blocks; patterns
with * ? [ < are not names) must exist, from the README's folder or, if it
has a slash, from the top of the repository.

Rule 2, public functions.  Every function declared (a prototype ending
in ";" outside braces, not a typedef) in a header that is not private --
any .h whose name does not end in _int.h -- has a comment directly above
it: the line just above the declaration ends a comment.  One comment may
cover a group of declarations written one after the other with no blank
line between them, function declarations and typedefs (a callback's
type belongs to the function that takes it): walking up from a
declaration over the lines of such declarations, the first other line
must end a comment.  A comment on the declaration's own lines counts
too.  A blank line, a #define, a struct or a section banner
("/* --- x --- */") directly above does not.

Folders whose name starts with "." or "build", and any folder holding a
meson build (meson-private/), are skipped.
"""
import os
import re
import sys

sys.dont_write_bytecode = True     # no __pycache__ in the checkout
from tap import run_rules  # noqa: E402  (tests/lint/tap.py)

SKIP_PREFIXES = (".", "build")
CODE_SPAN = re.compile(r"`([^`]+)`")
GLOB_CHARS = set("*?[<")


def walk(root):
    """Yield (dirpath, filenames) of the source tree."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d for d in dirnames
            if not d.startswith(SKIP_PREFIXES)
            and not os.path.isdir(os.path.join(dirpath, d, "meson-private")))
        yield dirpath, sorted(filenames)


def readme_lines(path):
    """(line number, text) of the lines outside fenced code blocks."""
    fenced = False
    with open(path, encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            if line.lstrip().startswith("```"):
                fenced = not fenced
                continue
            if not fenced:
                yield no, line.rstrip("\n")


def c_names(line):
    """The .c names in the line's code spans, patterns left out."""
    return [t for t in CODE_SPAN.findall(line)
            if re.fullmatch(r"[\w./-]*\w\.c", t) and not GLOB_CHARS & set(t)]


def listed(line):
    """The file a table row or list item lists, or None."""
    s = line.strip()
    if not (s.startswith("|") or re.match(r"([-*+]|\d+\.)\s", s)):
        return None
    spans = CODE_SPAN.findall(s)
    if not spans or not spans[0].endswith(".c"):
        return None
    rest = s.replace("`%s`" % spans[0], " ", 1)
    if len(re.findall(r"[A-Za-z]{2,}", rest)) < 2:
        return None
    return spans[0]


def check_readmes(root):
    """Rule 1: one line per problem."""
    problems = []
    top = os.path.join(root, "README.md")
    readmes = {}        # README path -> set of names it lists
    for dirpath, files in walk(root):
        for name in files:
            if name != "README.md":
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            lists = set()
            for no, line in readme_lines(path):
                item = listed(line)
                if item:
                    lists.add(item)
                for c in c_names(line):
                    here = os.path.join(dirpath, c)
                    there = os.path.join(root, c)
                    if not (os.path.isfile(here) or
                            ("/" in c and os.path.isfile(there))):
                        problems.append("%s:%d: names %s, which does not "
                                        "exist" % (rel, no, c))
            readmes[path] = lists
    for dirpath, files in walk(root):
        cfiles = [f for f in files if f.endswith(".c")]
        if not cfiles:
            continue
        d = dirpath
        while True:
            readme = os.path.join(d, "README.md")
            if readme in readmes and readme != top:
                break
            if os.path.samefile(d, root):
                readme = None
                break
            d = os.path.dirname(d)
        reldir = os.path.relpath(dirpath, root)
        if readme is None:
            problems.append("%s/: no README.md describes its .c files"
                            % reldir)
            continue
        for c in cfiles:
            name = os.path.relpath(os.path.join(dirpath, c),
                                   os.path.dirname(readme))
            if name not in readmes[readme]:
                problems.append("%s: does not list %s (a table row or list "
                                "item naming it, with what it owns)"
                                % (os.path.relpath(readme, root), name))
    return problems


def classify(text):
    """Per line of a C header: its code with comments and strings blanked,
    whether a comment ends on it, and whether that comment is a banner;
    preprocessor lines (with their continuations) come back empty."""
    code, ends, banner = [], [], []
    in_comment = False
    comment_start = ""
    pp_cont = False
    for line in text.split("\n"):
        if not in_comment and (pp_cont or line.lstrip().startswith("#")):
            pp_cont = line.rstrip().endswith("\\")
            code.append("")
            ends.append(False)
            banner.append(False)
            continue
        out, i, end, ban = [], 0, False, False
        while i < len(line):
            if in_comment:
                j = line.find("*/", i)
                if j < 0:
                    i = len(line)
                    break
                in_comment = False
                end = True
                ban = bool(re.match(r"/\*\s*(-{3}|={3})", comment_start))
                i = j + 2
                continue
            if line.startswith("/*", i):
                in_comment = True
                comment_start = line[i:]
                i += 2
                continue
            if line.startswith("//", i):
                end = True
                ban = False
                break
            if line[i] in "\"'":
                q = line[i]
                j = i + 1
                while j < len(line) and line[j] != q:
                    j += 2 if line[j] == "\\" else 1
                out.append(" ")
                i = j + 1
                continue
            out.append(line[i])
            i += 1
        code.append("".join(out))
        ends.append(end)
        banner.append(ban)
    return code, ends, banner


ATTRIBUTE = re.compile(r"__attribute__\s*\(\((?:[^()]|\([^()]*\))*\)\)")


def declarations(code):
    """(name, first line, last line) of each function declared at file
    scope, and (None, first, last) of each typedef; lines are 0-based."""
    out = []
    depth = 0
    stmt, start = [], None
    for no, line in enumerate(code):
        for ch in line:
            if start is None and not ch.isspace():
                start = no
            if start is not None:
                stmt.append(ch)
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                text = "".join(stmt)
                if depth == 0 and "(" in text.split("{", 1)[0] and \
                        "=" not in text.split("{", 1)[0]:
                    stmt, start = [], None      # a function definition
            elif ch == ";" and depth == 0:
                text = ATTRIBUTE.sub(" ", "".join(stmt))
                m = re.search(r"([A-Za-z_]\w*)\s*\(", text)
                if re.match(r"\s*typedef\b", text):
                    out.append((None, start, no))
                elif (m and "{" not in text and
                        not re.match(r"\s*\(", text[m.end() - 1:]
                                     .replace("(", "", 1)) and
                        m.group(1) not in ("sizeof",)):
                    out.append((m.group(1), start, no))
                stmt, start = [], None
        if start is not None:
            stmt.append("\n")
    return out


def check_headers(root):
    """Rule 2: one line per problem."""
    problems = []
    for dirpath, files in walk(root):
        for name in files:
            if not name.endswith(".h") or name.endswith("_int.h"):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            with open(path, encoding="utf-8") as f:
                code, ends, banner = classify(f.read())
            decls = declarations(code)
            in_decl = set()
            for _, first, last in decls:
                in_decl.update(range(first, last + 1))
            for fname, first, last in decls:
                if fname is None:
                    continue        # a typedef: not checked itself
                if any(ends[i] for i in range(first, last + 1)):
                    continue
                i = first - 1
                while i >= 0 and i in in_decl and not ends[i]:
                    i -= 1
                if i >= 0 and ends[i] and not banner[i]:
                    continue
                problems.append("%s:%d: %s() has no comment above its "
                                "declaration" % (rel, first + 1, fname))
    return problems


def main(argv):
    root = os.path.abspath(argv[1] if len(argv) > 1 else
                           os.path.join(os.path.dirname(__file__), "..", ".."))
    rules = [("every .c file is listed in its folder's README", check_readmes),
             ("every public function has a comment", check_headers)]
    return run_rules([(what, lambda check=check: check(root))
                      for what, check in rules])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
