#!/usr/bin/env python3
"""The man pages document what the programs accept, and nothing else.

- scaler.conf(5) documents every setting that the parser and the built-in
  plugins accept (the `known[]` / `*_known[]` arrays of src/conf/conf.c and
  plugins/*/*.c), section by section, and documents no setting they refuse;
- every plugin setting etc/scaler.conf mentions (comments included) is one
  that plugin accepts;
- scalerd(8) documents every option of `scalerd --help`, and scalerctl(1)
  every command and option of `scalerctl --help`.

Everything is read from the source tree ($top_srcdir) and the built programs
($top_builddir); nothing is started besides the two --help runs.
"""
import functools
import os
import re
import subprocess

from scalertest import *

# A setting name, as the parser and the man page spell it.
NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def src(*parts):
    return os.path.join(srcdir(), *parts)


def read(*parts):
    with open(src(*parts), encoding="utf-8") as f:
        return f.read()


# ---- the C side: what the parser accepts -----------------------------------

def strip_c_comments(text):
    """Blank out /* */ and // comments, keeping string literals and newlines."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


KNOWN_ARRAY = re.compile(
    r"(?:static\s+)?const\s+char\s*\*\s*(?:const\s+)?(\w*known)\s*\[\s*\]\s*=\s*\{(.*?)\}\s*;",
    re.S)
# A function definition starting at column 0: "static void cf_node(struct cf *x, ...)\n{".
FUNC_DEF = re.compile(r"^[A-Za-z_][\w \t\*]*?\b(\w+)\s*\([^;{]*?\)\s*\{", re.M)
PLUGIN_DEFINE = re.compile(r"SCALER_PLUGIN_DEFINE\s*\(\s*SCALER_KIND_(\w+)\s*,\s*(\"[^\"]+\"|\w+)")


def plugin_defines(text):
    """[(kind, name)] of the SCALER_PLUGIN_DEFINE()s of a C file; a name given
    as a macro is looked up in the file's #defines."""
    out = []
    for kind, name in PLUGIN_DEFINE.findall(text):
        if not name.startswith('"'):
            m = re.search(r"^#\s*define\s+%s\s+(\"[^\"]+\")" % re.escape(name), text, re.M)
            check(m, "cannot resolve the plugin name %s of SCALER_PLUGIN_DEFINE" % name)
            name = m.group(1)
        out.append((kind, name.strip('"')))
    return out


def brace_depths(text):
    """Brace depth at every offset of comment-free C text (strings skipped)."""
    depth, out, i, n = 0, [0] * (len(text) + 1), 0, len(text)
    while i < n:
        c = text[i]
        out[i] = depth
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            for k in range(i, min(j + 1, n)):
                out[k] = depth
            i = j + 1
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        i += 1
    out[n] = depth
    return out


def known_arrays(path):
    """[(array name, enclosing function or None at file scope, line, [names])]."""
    text = strip_c_comments(read(path))
    depth = brace_depths(text)
    funcs = [(m.start(), m.group(1)) for m in FUNC_DEF.finditer(text)]
    out = []
    for m in KNOWN_ARRAY.finditer(text):
        names = re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(2))
        func = None
        if depth[m.start()] > 0:
            for pos, name in funcs:
                if pos < m.start():
                    func = name
        out.append((m.group(1), func, text.count("\n", 0, m.start()) + 1, names))
    return out


# src/conf/conf.c: which section each array of which function is.
CORE_ARRAYS = {
    ("cf_root", "known"): "core",
    ("cf_root", "log_known"): "log",
    ("cf_node", "known"): "node",
    ("cf_zone", "known"): "zone",
}


@functools.lru_cache(maxsize=None)
def accepted_settings():
    """{section: set of names}: sections are "core", "node", "log", "zone" and
    "KIND NAME" for plugins ("driver process"), "KIND NAME GROUP" for a group
    inside a plugin's settings ("election bully peers")."""
    acc = {}
    for arr, func, line, names in known_arrays("src/conf/conf.c"):
        sec = CORE_ARRAYS.get((func, arr))
        check(sec is not None,
              "src/conf/conf.c:%d: array %s in %s() is not mapped to a section of "
              "scaler.conf(5); add it to CORE_ARRAYS in %s" % (line, arr, func, __file__))
        acc.setdefault(sec, set()).update(names)
    plugins_dir = src("plugins")
    subs = []
    for kind in sorted(os.listdir(plugins_dir)):
        kdir = os.path.join(plugins_dir, kind)
        if not os.path.isdir(kdir):
            continue
        files = sorted(f for f in os.listdir(kdir) if f.endswith(".c"))
        defines = {}
        for f in files:
            for k, name in plugin_defines(strip_c_comments(read("plugins", kind, f))):
                check(k.lower() == kind, "plugins/%s/%s defines a %s plugin" % (kind, f, k))
                defines[f] = name
        for f in files:
            arrays = known_arrays(os.path.join("plugins", kind, f))
            if not arrays:
                continue
            name = defines.get(f)
            if name is None and len(set(defines.values())) == 1:
                name = list(defines.values())[0]  # a plugin split over several files
            check(name is not None,
                  "plugins/%s/%s has a known[] array but no SCALER_PLUGIN_DEFINE: which "
                  "plugin is it?" % (kind, f))
            top = "%s %s" % (kind, name)
            for arr, func, line, names in arrays:
                if "plugin" in names:
                    acc.setdefault(top, set()).update(names)
                else:
                    subs.append((kind, f, top, arr, func, line, names))
    # groups inside a plugin's settings (and groups inside those), once every
    # plugin's own settings are known (a plugin split over files may parse a
    # group in another file): the setting whose group a function checks is
    # the one it is named after, "bully_conf_peers" -> "peers"; one that
    # ends the name wins over one inside it, the deepest over the others
    pending, strict = subs, True
    while pending:
        left = []
        for sub in pending:
            kind, f, top, arr, func, line, names = sub
            secs = [x for x in acc if x == top or x.startswith(top + " ")]
            pat = r"(^|_)%s$" if strict else r"(^|_)%s($|_)"
            owner = sorted(((len(x.split()), x, s) for x in secs for s in acc[x]
                            if func and re.search(pat % re.escape(s), func)), reverse=True)
            if not owner:
                left.append(sub)
                continue
            check(len(owner) == 1 or owner[0][0] > owner[1][0],
                  "plugins/%s/%s:%d: array %s (in %s()): which group does it check? %r" %
                  (kind, f, line, arr, func, owner))
            acc.setdefault("%s %s" % (owner[0][1], owner[0][2]), set()).update(names)
        if len(left) == len(pending) and not strict:
            kind, f, top, arr, func, line, names = left[0]
            check(False, "plugins/%s/%s:%d: array %s (in %s()) has no \"plugin\" and does not "
                  "name the setting whose group it checks" % (kind, f, line, arr, func))
        # a name inside the function's only once no name ending one resolves
        strict = len(left) < len(pending)
        pending = left
    # a plugin without a known[] array takes no settings but "plugin"
    for kind, name in all_plugins():
        acc.setdefault("%s %s" % (kind, name), {"plugin"})
    return acc


def all_plugins():
    """[(kind, name)] of every SCALER_PLUGIN_DEFINE under plugins/."""
    out = []
    for kind in sorted(os.listdir(src("plugins"))):
        kdir = src("plugins", kind)
        if os.path.isdir(kdir):
            for f in sorted(os.listdir(kdir)):
                if f.endswith(".c"):
                    out += [(k.lower(), n) for k, n in
                            plugin_defines(strip_c_comments(read("plugins", kind, f)))]
    return out


@functools.lru_cache(maxsize=None)
def plugin_kinds():
    """{kind: default plugin} from cf_plugin(x, root, "kind", "default", ...)
    and cf_metrics(x, root, "default")."""
    text = read("src/conf/conf.c")
    kinds = dict(re.findall(r"cf_plugin\s*\(\s*x\s*,\s*root\s*,\s*\"(\w+)\"\s*,\s*\"(\w+)\"",
                            text))
    kinds.update(("metrics", d) for d in
                 re.findall(r"cf_metrics\s*\(\s*x\s*,\s*root\s*,\s*\"(\w+)\"", text))
    check(len(kinds) >= 5, "cannot find the plugin kinds in src/conf/conf.c: %r" % kinds)
    return kinds


# ---- the man page side: what scaler.conf(5) documents ----------------------

def roff_args(line):
    """The arguments of a roff macro line, quotes removed."""
    args, i, n = [], 0, len(line)
    while i < n:
        while i < n and line[i] in " \t":
            i += 1
        if i >= n:
            break
        if line[i] == '"':
            j = i + 1
            buf = []
            while j < n:
                if line[j] == '"':
                    if j + 1 < n and line[j + 1] == '"':
                        buf.append('"')
                        j += 2
                        continue
                    break
                buf.append(line[j])
                j += 1
            args.append("".join(buf))
            i = j + 1
        else:
            j = i
            while j < n and line[j] not in " \t":
                j += 1
            args.append(line[i:j])
            i = j
    return args


def roff_text(s):
    s = re.sub(r"\\f(\(..|\[[^\]]*\]|.)", "", s)
    s = s.replace("\\-", "-").replace("\\&", "").replace("\\(dq", '"').replace("\\e", "\\")
    return s


SEPARATORS = {",", ", ", " and ", ", and ", " or "}


def tag_names(line):
    """Setting names a .TP tag line documents: `.B name`, or the leading bold
    words of `.BR a ", " b " (type; default ...)"`."""
    m = re.match(r"^\.(B|BR|BI)\s+(.*)$", line)
    if not m:
        return []
    args = [roff_text(a) for a in roff_args(m.group(2))]
    if m.group(1) == "B":
        args = [" ".join(args)]
    names = []
    for i, a in enumerate(args):
        if i % 2 == 0:
            if not NAME.match(a):
                break
            names.append(a)
        elif a not in SEPARATORS:
            break
    return names


def documented_settings(path="man/scaler.conf.5"):
    """({section: set of names}, {kind: set of plugin names}) as the page
    documents them; sections named as in accepted_settings()."""
    kinds = plugin_kinds()
    doc, plugins = {}, {}
    sh = ss = None
    stack = []       # owners of the open .RS blocks
    last_tag = None  # names of the last .TP tag at the current depth
    common = set()   # settings documented once for every plugin group ("plugin")
    expect_tag = False
    with open(path if os.path.isabs(path) else src(path), encoding="utf-8") as f:
        lines = f.read().split("\n")
    for raw in lines:
        line = raw.rstrip()
        if line.startswith(".SH"):
            sh = " ".join(roff_text(a) for a in roff_args(line[3:])).upper()
            ss, stack, last_tag = None, [], None
            if sh == "NODE":
                doc.setdefault("core", set()).add("node")
            elif sh == "ZONES":
                doc.setdefault("core", set()).add("zones")
            continue
        if line.startswith(".SS"):
            ss = (roff_args(line[3:]) or [""])[0]
            stack, last_tag = [], None
            if sh == "PLUGINS" and ss in kinds:
                doc.setdefault("core", set()).add(ss)
            continue
        if line.startswith(".RS"):
            stack.append(last_tag[0] if last_tag else None)
            last_tag = None
            continue
        if line.startswith(".RE"):
            if stack:
                stack.pop()
            last_tag = None
            continue
        if line.startswith(".TP"):
            expect_tag = True
            continue
        if not expect_tag:
            continue
        expect_tag = False
        names = tag_names(line)
        last_tag = names or None
        if not names:
            continue
        if sh == "NODE":
            sec = "node" if not stack else None
        elif sh == "GLOBAL SETTINGS":
            sec = "core" if not stack else ("log" if stack == ["log"] else None)
        elif sh == "ZONES":
            sec = "zone" if not stack else None
        elif sh == "PLUGINS" and ss is None:
            if not stack:
                common.update(names)
            sec = None
        elif sh == "PLUGINS" and ss in kinds:
            if not stack:
                plugins.setdefault(ss, set()).update(names)
                sec = None
            elif None not in stack:
                sec = " ".join([ss] + stack)
            else:
                sec = None
        else:
            sec = None
        if sec:
            doc.setdefault(sec, set()).update(names)
    for kind, names in plugins.items():
        for name in names:
            doc.setdefault("%s %s" % (kind, name), set()).update(common)
    return doc, plugins


def compare(accepted, documented, what_doc):
    """Failure lines for both directions, section by section."""
    problems = []
    for sec in sorted(set(accepted) | set(documented)):
        a, d = accepted.get(sec, set()), documented.get(sec, set())
        missing = sorted(a - d)
        extra = sorted(d - a)
        if missing:
            problems.append("[%s] accepted but not documented in %s: %s" %
                            (sec, what_doc, ", ".join(missing)))
        if extra:
            problems.append("[%s] documented in %s but not accepted by the code: %s" %
                            (sec, what_doc, ", ".join(extra)))
    return problems


def conf_page_problems(page="man/scaler.conf.5"):
    accepted = accepted_settings()
    documented, plugins = documented_settings(page)
    problems = compare(accepted, documented, os.path.basename(page))
    # every built-in plugin has its entry, and every entry is a plugin
    built = {}
    for sec in accepted:
        parts = sec.split(" ")
        if len(parts) == 2:
            built.setdefault(parts[0], set()).add(parts[1])
    for kind in sorted(set(built) | set(plugins)):
        b, d = built.get(kind, set()), plugins.get(kind, set())
        for name in sorted(b - d):
            problems.append("[%s] plugin %s is not documented under .SS %s" % (kind, name, kind))
        for name in sorted(d - b):
            problems.append("[%s] %s is documented as a plugin but there is no such plugin "
                            "with settings" % (kind, name))
    return problems, accepted, documented


@test
def scaler_conf_5_documents_every_setting_the_parser_accepts():
    problems, accepted, documented = conf_page_problems()
    for sec in sorted(accepted):
        log("%-24s %2d settings" % (sec, len(accepted[sec])))
    check(not problems, "scaler.conf(5) and the code disagree:\n" + "\n".join(problems))
    # the extraction itself must not be empty (a broken regex would pass)
    for sec in ("core", "node", "log", "zone", "driver process", "driver docker",
                "metrics http", "metrics influxdb", "policy threshold", "policy target",
                "election single", "election bully", "election bully peers",
                "balancer builtin"):
        check(len(accepted.get(sec, ())) >= 2, "no settings found for %s in the code" % sec)


@test
def the_documentation_test_notices_a_setting_removed_from_the_page():
    """The check above fails, naming the setting, when a copy of the page
    loses one entry (renamed to a setting the code does not know)."""
    text = read("man/scaler.conf.5")
    copy = os.path.join(tmpdir(), "scaler.conf.5")
    for sec, name in [("node", "token_file"), ("log", "syslog"), ("zone", "ports"),
                      ("core", "drain_timeout"), ("driver docker", "api_timeout"),
                      ("balancer builtin", "retries"), ("election bully peers", "url"),
                      ("metrics influxdb", "timeout")]:
        tags = list(re.finditer(r"^\.BR? %s( .*)?$" % re.escape(name), text, re.M))
        check(tags, "no entry of %s in man/scaler.conf.5" % name)
        want = "[%s] accepted but not documented in scaler.conf.5: " % sec
        seen = []
        for m in tags:  # the same name may be documented in several sections
            cut = text[:m.start()] + ".B not_a_setting_" + name + text[m.end():]
            with open(copy, "w", encoding="utf-8") as f:
                f.write(cut)
            try:
                problems = conf_page_problems(copy)[0]
            finally:
                os.unlink(copy)
            seen.append(problems)
            if any(p.startswith(want) and name in p[len(want):].split(", ") for p in problems):
                check(any("not_a_setting_" + name in p for p in problems),
                      "a documented setting the code does not accept was not noticed: %r" %
                      problems)
                break
        else:
            raise AssertionError("removing %s from [%s] of a copy of scaler.conf.5 was not "
                                 "noticed; problems found: %r" % (name, sec, seen))


# ---- etc/scaler.conf --------------------------------------------------------

_plugins_by_kind = {}


def known_plugins_of(kind):
    if not _plugins_by_kind:
        for sec in accepted_settings():
            parts = sec.split(" ")
            if len(parts) == 2:
                _plugins_by_kind.setdefault(parts[0], set()).add(parts[1])
    return _plugins_by_kind.get(kind, set())


def split_comment(line):
    """(code, comment text or None): '#' or '//' outside strings starts a comment."""
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c == '"':
            i += 1
            while i < n and line[i] != '"':
                i += 2 if line[i] == "\\" else 1
        elif c == "#":
            return line[:i], line[i + 1:]
        elif line.startswith("//", i):
            return line[:i], line[i + 2:]
        i += 1
    return line, None


TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[A-Za-z0-9_][A-Za-z0-9_\-\.]*|[=:;,{}()\[\]]|\S')


def tokenize(s):
    return TOKEN.findall(s)


@test
def etc_scaler_conf_mentions_only_settings_its_plugins_accept():
    kinds = plugin_kinds()
    accepted = accepted_settings()
    text = read("etc/scaler.conf")
    mentions = mentions_in(text, kinds)
    check(len(mentions) >= 10, "too few plugin settings found in etc/scaler.conf: %r" % mentions)
    problems = []
    seen = set()
    for lineno, kind, plugin, path, name in mentions:
        plugin = plugin or kinds[kind]
        sec = " ".join([kind, plugin] + path)
        seen.add((sec, name))
        if name not in accepted.get(sec, set()):
            problems.append("etc/scaler.conf:%d: %s: %s is not a setting of %s %s%s (it "
                            "accepts: %s)" % (lineno, ".".join([kind] + path + [name]), name,
                                              kind, plugin, "".join(" group " + p for p in path),
                                              ", ".join(sorted(accepted.get(sec, ()))) or
                                              "nothing"))
    log("plugin settings mentioned: " + ", ".join("%s/%s" % s for s in sorted(seen)))
    check(not problems, "\n".join(problems))
    # the comments count: the file mentions http's path and bully's peers
    check(("metrics http", "path") in seen,
          "the commented `# path = \"/stats\";` of etc/scaler.conf was not read")
    check(("election bully", "check_interval") in seen and ("election bully peers", "url") in seen,
          "the commented bully settings of etc/scaler.conf were not read")


def mentions_in(text, kinds):
    """[(line, kind, plugin, [group...], name)] for every `name = value`
    inside a plugin group of etc/scaler.conf, comments included.

    A block of comment lines is read as libconfig text that continues the
    group it is in; it speaks of the group's plugin unless it names another
    one, by a line `# docker: ...` or by `# plugin = "docker";`. A code
    line, a blank line or an empty `#` line ends the block."""
    out = []
    stack = []          # owners of the open groups/lists of the code
    group_plugin = {}   # kind -> `plugin` of its group in the code
    cstack = ctx = None  # the comment block's own stack and plugin
    for lineno, line in enumerate(text.split("\n"), 1):
        code, comment = split_comment(line)
        if code.strip():
            scan(code, stack, 0, group_plugin, kinds, out, lineno, None, True)
            cstack = ctx = None
        if comment is None:
            if not code.strip():
                cstack = ctx = None
            continue
        if not stack or stack[0] not in kinds:
            continue
        kind = stack[0]
        body = split_comment(comment)[0]  # "x = 1;  # unit" -> "x = 1;"
        if not body.strip():
            cstack = ctx = None
            continue
        if cstack is None:
            cstack = list(stack)
        m = re.match(r"\s*([a-z0-9_-]+):\s+(.*)$", body)
        if m and m.group(1) in known_plugins_of(kind):
            ctx, body = m.group(1), m.group(2)
        ctx = scan(body, cstack, len(stack), group_plugin, kinds, out, lineno, ctx, False)
    return out


def is_value(tok):
    """A token that can start a libconfig value (prose like
    `desired = ceil(...)` is no setting)."""
    return tok is not None and (tok[0] in '"[({-+.' or tok[0].isdigit() or
                                tok.lower() in ("true", "false"))


def scan(s, stack, base, group_plugin, kinds, out, lineno, ctx, is_code):
    """Walk libconfig text: `name = value` records a name; `{` or `(` as the
    value opens a group owned by that name, and a bare `{` inside a list is
    an element with the list's owner. `stack` holds owner names; it never
    shrinks below `base`, and outside a list a bare bracket (prose) is
    ignored. Returns the plugin the text speaks of (`plugin = "x"` in a
    comment changes it)."""
    toks = tokenize(s)
    i = 0
    while i < len(toks):
        t = toks[i]
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        # libconfig also takes "name : value", but in prose a colon is no
        # assignment ("the seed: 10 s"): comments need "="
        value = toks[i + 2] if i + 2 < len(toks) else None
        if (re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", t) and
                nxt in (("=", ":") if is_code else ("=",)) and is_value(value)):
            if stack and stack[0] in kinds:
                kind = stack[0]
                path = []
                for owner in stack[1:]:  # a list and its elements have one owner
                    if not path or path[-1] != owner:
                        path.append(owner)
                if t == "plugin" and not path:
                    if value.startswith('"'):
                        if is_code:
                            group_plugin[kind] = value.strip('"')
                        else:
                            ctx = value.strip('"')
                else:
                    out.append((lineno, kind, ctx or group_plugin.get(kind), path, t))
            if value in ("{", "("):
                stack.append(t)
                i += 3
                continue
            i += 2
            continue
        if t in ("{", "(") and len(stack) > base:
            stack.append(stack[-1])
        elif t in ("}", ")") and len(stack) > base:
            closed = stack.pop()
            if not stack and closed in kinds:
                group_plugin.pop(closed, None)
        i += 1
    return ctx


# ---- scalerd(8), scalerctl(1) ----------------------------------------------

def help_text(prog):
    path = binary(prog)
    if not os.path.exists(path):
        skip("%s is not built (%s)" % (prog, path))
    r = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "%s --help exited %d: %s" % (prog, r.returncode, r.stderr))
    return r.stdout + r.stderr


def man_words(page):
    """The page's text, escapes resolved, for looking up option and command names."""
    text = roff_text(read("man", page))
    return text


def options_of(help_txt):
    return sorted(set(re.findall(r"(?<![\w-])(--?[A-Za-z][A-Za-z0-9-]*)", help_txt)))


def has_word(text, word):
    return re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(word), text) is not None


@test
def scalerd_8_documents_every_option_of_scalerd_help():
    h = help_text("scalerd")
    opts = options_of(h)
    check({"--config", "--test", "--balancer", "--help"} <= set(opts),
          "cannot read the options of scalerd --help: %r" % opts)
    page = man_words("scalerd.8")
    missing = [o for o in opts if not has_word(page, o)]
    log("scalerd options: " + " ".join(opts))
    check(not missing, "options of `scalerd --help` missing from man/scalerd.8: " +
          ", ".join(missing))


@test
def scalerctl_1_documents_every_command_and_option_of_scalerctl_help():
    h = help_text("scalerctl")
    m = re.search(r"^Commands:\n(.*?)(?:\n\S|\Z)", h, re.S | re.M)
    check(m, "no Commands: section in scalerctl --help:\n" + h)
    commands = sorted(set(re.findall(r"^\s+([a-z][a-z-]*)\b", m.group(1), re.M)))
    check(len(commands) >= 5, "cannot read the commands of scalerctl --help: %r" % commands)
    opts = options_of(h)
    page = man_words("scalerctl.1")
    # a command is documented as a .TP entry (or in the SYNOPSIS) of the page
    src_page = read("man", "scalerctl.1")
    entries = set()
    for tag in re.findall(r"^\.TP\n(.*)$", src_page, re.M):
        args = [roff_text(a) for a in roff_args(tag.split(None, 1)[1] if " " in tag else "")]
        if args:
            entries.add(args[0].split()[0] if args[0].split() else "")
    missing_cmds = [c for c in commands if c not in entries]
    missing_opts = [o for o in opts if not has_word(page, o)]
    log("scalerctl commands: %s; options: %s" % (" ".join(commands), " ".join(opts)))
    problems = []
    if missing_cmds:
        problems.append("commands of `scalerctl --help` without an entry in man/scalerctl.1: " +
                        ", ".join(missing_cmds))
    if missing_opts:
        problems.append("options of `scalerctl --help` missing from man/scalerctl.1: " +
                        ", ".join(missing_opts))
    check(not problems, "\n".join(problems))


if __name__ == "__main__":
    main()
