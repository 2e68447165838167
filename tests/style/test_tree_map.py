"""HACKING.md's map of the tree matches the tree: every folder it names
exists and holds files of the repository, and every folder of the
repository is in the map (a folder covers its subfolders; the folders right
under src/, plugins/ and tests/ are each named)."""
import os
import re
import subprocess

from scalertest import *


def map_entries():
    with open(os.path.join(srcdir(), "HACKING.md")) as f:
        text = f.read()
    m = re.search(r"<!-- tree map -->\s*```\n(.*?)```", text, re.S)
    check(m, "HACKING.md has no block after <!-- tree map -->")
    return [line.split()[0].rstrip("/") for line in m.group(1).splitlines()
            if line and not line[0].isspace()]


def tree_dirs():
    try:
        out = subprocess.run(["git", "-C", srcdir(), "ls-files"], capture_output=True,
                             text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return None
    return sorted({os.path.dirname(f) for f in out} - {""})


def covered(d, entries):
    return any(d == e or d.startswith(e + "/") for e in entries)


def parent_of_entries(d, entries):
    """src/ and tests/ themselves hold only build rules (local.am)."""
    return any(e.startswith(d + "/") for e in entries)


@test
def every_folder_of_the_map_exists_and_holds_files():
    dirs = tree_dirs()
    if dirs is None:
        skip("not a git checkout")
    for e in map_entries():
        check(any(covered(d, [e]) for d in dirs),
              "HACKING.md's map names %s/, which holds no file of the repository" % e)


@test
def every_folder_of_the_tree_is_in_the_map():
    dirs = tree_dirs()
    if dirs is None:
        skip("not a git checkout")
    entries = map_entries()
    for d in dirs:
        check(covered(d, entries) or parent_of_entries(d, entries),
              "%s/ is not in HACKING.md's map of the tree" % d)
        parts = d.split("/")
        if parts[0] in ("src", "plugins", "tests") and len(parts) >= 2:
            top = "/".join(parts[:2])
            check(top in entries, "%s/ is not named in HACKING.md's map of the tree" % top)


if __name__ == "__main__":
    main()
