"""Headless Chromium for the tests of the web pages (the app's dashboard,
scalerd's console): the browser Debian ships, driven by playwright-core,
which is installed under the build tree on first use (never a browser
download). Needs `apt-get install chromium` and node/npm."""
import os
import shutil
import subprocess

from scalertest import builddir, log, skip

__all__ = ["chromium", "playwright_dir", "browser_env"]

# pinned: playwright-core 1.62 and later need node 20, Debian 12 ships node 18
PLAYWRIGHT = "playwright-core@1.60"


def chromium():
    """$CHROMIUM when set, else chromium on PATH or in /usr/bin; None when missing."""
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


def playwright_dir():
    """$top_builddir/tests, with node_modules/playwright-core in it (installed if missing)."""
    prefix = os.path.join(builddir(), "tests")
    if os.path.isdir(os.path.join(prefix, "node_modules", "playwright-core")):
        return prefix
    os.makedirs(prefix, exist_ok=True)
    env = dict(os.environ, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1")
    log("installing %s into %s" % (PLAYWRIGHT, prefix))
    r = subprocess.run(["npm", "install", "--prefix", prefix, "--no-audit", "--no-fund",
                        "--loglevel=error", PLAYWRIGHT], env=env, capture_output=True, text=True,
                       timeout=300)
    if r.returncode != 0:
        skip("npm install %s failed: %s" % (PLAYWRIGHT, (r.stderr or r.stdout).strip()[-300:]))
    return prefix


def browser_env():
    """The environment of a node script that drives Chromium, or a skip."""
    if not chromium():
        skip("chromium is not installed (apt-get install chromium)")
    if not shutil.which("node") or not shutil.which("npm"):
        skip("node and npm are needed for playwright-core (apt-get install nodejs npm)")
    prefix = playwright_dir()
    return dict(os.environ, NODE_PATH=os.path.join(prefix, "node_modules"), CHROMIUM=chromium())
