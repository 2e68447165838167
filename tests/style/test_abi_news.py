"""NEWS and <scaler/plugin.h> agree on which ABI minor added what: every
host service and operation a "Plugin ABI 1.N" section of NEWS names is
labelled ABI 1.N in the header, every member the header labels with a
minor of 2 or more in struct scaler_host or an ops table is named in that
minor's section, and the newest section is the header's
SCALER_ABI_MINOR. (A plugin author checks for a service with
SCALER_HOST_HAS and reads NEWS to learn which host has it.)"""
import os
import re

from scalertest import *

LABEL = re.compile(r"/\*\s*(?:-+\s*)?ABI 1\.(\d+)\b")


def header():
    with open(os.path.join(srcdir(), "include", "scaler", "plugin.h")) as f:
        return f.read()


def header_labels():
    """{(struct, member): minor} for every member of every struct of the
    header; members before a label inside a struct are minor 0 (1.0 and
    1.1, before the rule), and a struct whose comment right above it says
    "ABI 1.N:" is minor N as a whole."""
    text = header()
    labels = {}
    for m in re.finditer(r"(/\*[^/]*?\*/\s*)?\bstruct (scaler_\w+) \{\n(.*?)\n\};", text, re.S):
        above = LABEL.match(m.group(1) or "")
        minor = int(above.group(1)) if above else 0
        labels[(m.group(2), None)] = minor
        body = re.sub(r"/\*(?!\s*(?:-+\s*)?ABI 1\.\d).*?\*/", "", m.group(3), flags=re.S)
        for piece in re.split(r"(/\*.*?\*/)", body, flags=re.S):
            label = LABEL.match(piece)
            if label:
                minor = int(label.group(1))
                continue
            for stmt in piece.split(";")[:-1]:
                stmt = re.sub(r"SCALER_ADDED_OP|__attribute__\(\(.*?\)\)", "", " ".join(stmt.split()))
                fn = re.search(r"\(\*\s*(\w+)\)\s*\(", stmt)
                if fn:
                    names = [fn.group(1)]
                else:
                    decl = re.sub(r"\[.*?\]", "", stmt).split(",")
                    names = [decl[0].split()[-1] if decl[0].split() else ""] + decl[1:]
                for n in names:
                    n = n.strip().lstrip("*")
                    if re.fullmatch(r"\w+", n):
                        labels[(m.group(2), n)] = minor
    return labels


def news_sections():
    """{minor: [bullet text, ...]} of NEWS's "Plugin ABI 1.N" sections."""
    with open(os.path.join(srcdir(), "NEWS")) as f:
        text = f.read()
    sections = {}
    parts = re.split(r"(?m)^Plugin ABI 1\.(\d+)\b.*\n", text)
    for minor, body in zip(parts[1::2], parts[2::2]):
        body = re.split(r"\n\s*\n", body)[0]  # up to the first blank line
        bullets = [" ".join(b.split()) for b in re.split(r"(?m)^- ", body) if b.strip()]
        check(int(minor) not in sections, "NEWS has two sections for Plugin ABI 1.%s" % minor)
        sections[int(minor)] = bullets
    return sections


def news_claims():
    """[(minor, struct, member)] named by the bullets of NEWS's ABI sections:
    "host->a, b and host->c: ..." and "struct scaler_x: a and b (...)"."""
    claims = []
    for minor, bullets in news_sections().items():
        for b in bullets:
            m = re.match(r"host->([^:]*):", b)
            if m:
                for n in re.split(r",|\band\b", m.group(1)):
                    claims.append((minor, "scaler_host", n.strip().replace("host->", "")))
                continue
            m = re.match(r"struct (scaler_\w+): ([^(:.]*)", b)
            if m:
                for n in re.split(r",|\band\b", m.group(2)):
                    claims.append((minor, m.group(1), n.strip()))
    return claims


@test
def each_service_news_lists_under_an_abi_minor_is_labelled_that_minor_in_plugin_h():
    labels = header_labels()
    claims = news_claims()
    check(len(claims) >= 10, "NEWS names the services and operations of ABI 1.2 to 1.5 "
          "(host->X: ..., struct scaler_x_ops: X ...); found only %r" % claims)
    wrong = []
    for minor, struct, member in claims:
        if (struct, member) not in labels:
            wrong.append("NEWS, Plugin ABI 1.%d: %s.%s is not a member of that struct in "
                         "plugin.h" % (minor, struct, member))
        elif labels[(struct, member)] != minor:
            wrong.append("NEWS lists %s.%s under Plugin ABI 1.%d; plugin.h labels it ABI 1.%d"
                         % (struct, member, minor, labels[(struct, member)]))
    check(not wrong, "\n".join(wrong))


@test
def every_host_service_and_operation_a_minor_added_is_in_its_news_section():
    named = {(s, n): minor for minor, s, n in news_claims()}
    missing = []
    for (struct, member), minor in sorted(header_labels().items(), key=lambda kv: str(kv[0])):
        if member is None or minor < 2 or member == "size":
            continue
        if struct != "scaler_host" and not struct.endswith("_ops"):
            continue
        if (struct, member) not in named:
            missing.append("plugin.h labels %s.%s ABI 1.%d; NEWS's Plugin ABI 1.%d section "
                           "does not name it" % (struct, member, minor, minor))
    check(not missing, "\n".join(missing))


@test
def the_newest_news_section_is_the_headers_abi_and_no_minor_is_skipped():
    current = int(re.search(r"#define SCALER_ABI_MINOR (\d+)", header()).group(1))
    sections = sorted(news_sections())
    check_eq(sections[-1] if sections else None, current,
             "the newest Plugin ABI 1.N section of NEWS (SCALER_ABI_MINOR)")
    check_eq(sections, list(range(2, current + 1)), "NEWS's Plugin ABI sections, 1.2 on")
    over = sorted({m for m in header_labels().values() if m > current})
    check(not over, "plugin.h labels members with ABI 1.%r, after SCALER_ABI_MINOR %d"
          % (over, current))


if __name__ == "__main__":
    main()
