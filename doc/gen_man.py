#!/usr/bin/python3
"""Write a man page from its template and the phifs binary's own help.

    python3 doc/gen_man.py PHIFS TEMPLATE OUTPUT VERSION

The binary is the one source of the commands, their usage lines and
texts (`phifs help`, `phifs help COMMAND`) and of the configuration keys
(`phifs help config`); the templates (doc/*.in, roff) hold only the prose
around them.  A template line that is exactly one of these is replaced:

    @SYNOPSIS@        one synopsis line per command (put it in .nf)
    @COMMANDS@        per command: its usage and its whole help text
    @HELP mount@      the text of one command's help, usage line left out
    @CONFIG@          every section and key of the configuration, then
                      what the value types mean

and @VERSION@ anywhere by VERSION.  Run by meson at build time (doc/),
and imported by tests/lint/check_man.py, which compares the same parse of
the binary's help with the README.
"""
import re
import subprocess
import sys


# --- reading the binary's help ------------------------------------------

def run_help(phifs, *args):
    """The output of `phifs help ARGS` (it must succeed)."""
    p = subprocess.run([phifs, "help"] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, check=False)
    if p.returncode != 0:
        raise SystemExit("%s help %s: exit %d: %s" % (
            phifs, " ".join(args), p.returncode, p.stderr.strip()))
    return p.stdout


def commands(phifs):
    """[(name, summary)] from `phifs help`, in its order, help included;
    a summary's continuation lines are joined to it.  A line of the list
    that is neither stops the build: the pages must not lose a command."""
    out = []
    listing = False
    for line in run_help(phifs).splitlines():
        if line == "commands:":
            listing = True
            continue
        if not listing or not line.strip():
            continue
        m = re.match(r"  ([\w-]+) +(\S.*)$", line)
        if m:
            out.append([m.group(1), m.group(2)])
        elif out and line.startswith("    "):
            out[-1][1] += " " + line.strip()
        else:
            raise SystemExit("phifs help: cannot read the line %r" % line)
    if not out:
        raise SystemExit("phifs help: no commands listed")
    return [tuple(c) for c in out]


def command_help(phifs, name):
    """(usage, body) of `phifs help NAME`: the usage line without its
    "usage: " and the text after it; (None, "") for `help` itself."""
    if name == "help":
        return None, ""
    text = run_help(phifs, name)
    first, _, body = text.partition("\n")
    if not first.startswith("usage: "):
        raise SystemExit("phifs help %s: no usage line: %r" % (name, first))
    return first[len("usage: "):].strip(), body.strip("\n")


def config_keys(phifs):
    """(sections, notes) from `phifs help config`: sections is
    [(section, note, [(key, type, default, meaning)])], notes the lines
    after the table (what the value types mean), which ends at the first
    blank line.  A line of the table that is neither a section nor a key
    stops the build: the pages must not lose a key."""
    sections, notes = [], []
    table = True
    for line in run_help(phifs, "config").splitlines():
        if not line.strip():
            table = not sections
            continue
        if not table:
            notes.append(line.strip())
            continue
        if line.lstrip().startswith("KEY "):
            continue
        m = re.match(r"(\[[^\]]+\])\s*(.*)$", line)
        k = re.match(r"  ([\w-]+)\s+(\S+)\s+(\S+)\s+(\S.*)$", line)
        if m:
            sections.append((m.group(1), m.group(2), []))
        elif k and sections:
            sections[-1][2].append(k.groups())
        else:
            raise SystemExit("phifs help config: cannot read the line %r"
                             % line)
    if not sections or not all(keys for _, _, keys in sections):
        raise SystemExit("phifs help config: a section without keys")
    return sections, notes


# --- roff ---------------------------------------------------------------

def esc(text):
    """Text for roff: backslashes and minus signs escaped, `code` bold."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    text = re.sub(r"`([^`]+)`", r"\\fB\1\\fR", text)
    if text.startswith((".", "'")):
        text = "\\&" + text
    return text


def usage_roff(text):
    """A usage line: the words written as they are in bold, the
    placeholders (CONFIG, TIME, ...) in italics."""
    out = []
    for tok in re.split(r"([A-Z][A-Z_]+|[a-z][\w.-]*)", text):
        if not tok:
            continue
        if re.fullmatch(r"[A-Z][A-Z_]+", tok):
            out.append("\\fI%s\\fR" % tok)
        elif re.fullmatch(r"[a-z][\w.-]*", tok):
            out.append("\\fB%s\\fR" % esc(tok))
        else:
            out.append(esc(tok))
    line = "".join(out)
    return "\\&" + line if line.startswith((".", "'")) else line


def blocks(body):
    """The body's blocks: runs of lines between blank lines."""
    out, cur = [], []
    for line in body.splitlines():
        if line.strip():
            cur.append(line)
        elif cur:
            out.append(cur)
            cur = []
    if cur:
        out.append(cur)
    return out


OPTION = re.compile(r"  (-\S*(?: [A-Z][A-Z_]*)?)(?:\s{2,}(\S.*))?$")


def options_roff(lines):
    """An option list ("  --opt ARG   what it does", continued on lines
    indented further) as tagged paragraphs."""
    out, item = [], None
    for line in lines:
        m = OPTION.match(line)
        if m:
            item = [m.group(1), [m.group(2) or ""]]
            out.append(item)
        else:
            item[1].append(line.strip())
    roff = []
    for opt, words in out:
        roff += [".TP", usage_roff(opt), esc(" ".join(w for w in words if w))]
    return roff


def body_roff(body):
    """A command's help text: paragraphs, option lists, examples."""
    roff = []
    for b in blocks(body):
        if OPTION.match(b[0]):
            roff += options_roff(b)
        elif all(line.startswith(" ") for line in b):
            indent = min(len(x) - len(x.lstrip()) for x in b)
            roff += [".PP", ".RS", ".nf"]
            roff += [esc(x[indent:]) for x in b]
            roff += [".fi", ".RE"]
        else:
            roff += [".PP", esc(" ".join(x.strip() for x in b))]
    return roff


def synopsis_roff(phifs):
    roff = []
    for name, _ in commands(phifs):
        usage, _ = command_help(phifs, name)
        if usage is None:
            usage = "phifs help [COMMAND | config]"
        roff.append(usage_roff(usage))
    return roff


def commands_roff(phifs):
    roff = []
    for name, summary in commands(phifs):
        usage, body = command_help(phifs, name)
        roff += [".SS %s" % name, ".PP", usage_roff(usage or
                 "phifs help [COMMAND | config]"), ".PP", esc(summary[0].upper() + summary[1:]) + "."]
        roff += body_roff(body)
    return roff


def config_roff(phifs):
    sections, notes = config_keys(phifs)
    roff = []
    for section, note, keys in sections:
        roff += ['.SS "%s"' % esc(section)]
        if note:
            roff += [".PP", esc(note[0].upper() + note[1:]) + "."]
        for key, typ, default, meaning in keys:
            if default == "required":
                when = "required"
            else:
                when = "default: %s" % default
            roff += [".TP", "\\fB%s\\fR = \\fI%s\\fR" % (esc(key), typ),
                     "%s (%s)." % (esc(meaning), esc(when))]
    roff += [".SS Values"]
    for line in notes:
        roff += [".PP", esc(line)]
    return roff


def fill(template, phifs, version):
    out = []
    for line in template.splitlines():
        m = re.fullmatch(r"@HELP ([\w-]+)@", line)
        if line == "@SYNOPSIS@":
            out += synopsis_roff(phifs)
        elif line == "@COMMANDS@":
            out += commands_roff(phifs)
        elif line == "@CONFIG@":
            out += config_roff(phifs)
        elif m:
            out += body_roff(command_help(phifs, m.group(1))[1])
        else:
            out.append(line.replace("@VERSION@", version))
    left = [x for x in out if re.fullmatch(r"@[A-Z]+(?: [\w-]+)?@", x)]
    if left:
        raise SystemExit("unknown placeholder: %s" % left[0])
    return "\n".join(out) + "\n"


def main(argv):
    if len(argv) != 5:
        raise SystemExit("usage: gen_man.py PHIFS TEMPLATE OUTPUT VERSION")
    phifs, template, output, version = argv[1:]
    with open(template, encoding="utf-8") as f:
        text = fill(f.read(), phifs, version)
    with open(output, "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
