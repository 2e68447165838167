#!/usr/bin/env python3
"""scaler-app's dashboard in a real browser: headless Chromium driven by
playwright-core (tests/app/dashboard.js). Needs `apt-get install chromium`
and node/npm; playwright-core is installed under the build tree on first use
(never a browser download)."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "app"))
from apptest import App  # noqa: E402
from browsertest import browser_env  # noqa: E402
from scalertest import builddir, check, check_eq, log, main, srcdir, test  # noqa: E402

TOKEN = "dashboard-token-8d2f41c7a9e05b36"


@test
def the_dashboard_asks_for_the_token_once_and_high_cpu_moves_profile_and_chart():
    env = browser_env()
    a = App(zone="zone-web", server_id="web-1", env={"APP_CONTROL_TOKEN": TOKEN})
    o = App(zone="zone-web", server_id="web-open")
    shot = os.path.join(builddir(), "tests", "artifacts", "app-dashboard.png")
    r = subprocess.run(["node", os.path.join(srcdir(), "tests", "app", "dashboard.js"),
                        a.url("/"), "web-1", shot, TOKEN, o.url("/")], env=env,
                        capture_output=True, text=True,
                       timeout=120)
    check(r.returncode == 0, "the browser script should pass; exit %d, stderr:\n%s\nstdout:\n%s"
          % (r.returncode, r.stderr[-3000:], r.stdout[-1000:]))
    res = json.loads(r.stdout.strip().splitlines()[-1])
    log("browser saw: %r" % res)
    check_eq((res["pill_before"], res["posts_before_token"]), ("controls locked", 0),
             "the pill, and the requests sent before the token was given")
    check(res["refused_message"] and res["profile_after_wrong"] == "stop",
          "a wrong token is refused and changes nothing: %r, profile %r"
          % (res["refused_message"], res["profile_after_wrong"]))
    check_eq((res["profile_before"], res["profile_after"], res["pill_after"]),
             ("stop", "high", "controls unlocked"),
             "#profile before and after clicking High CPU with the token, and the pill")
    check(res["cpu_after"] >= 20 and res["cpu_after"] > res["cpu_before"],
          "#cpu rises after High CPU: %r -> %r" % (res["cpu_before"], res["cpu_after"]))
    check(res["high_active"], "the High CPU button is shown as active")
    check(res["chart_cpu_pixels"] > 20,
          "the chart draws the CPU line; %d pixels of its colour" % res["chart_cpu_pixels"])
    check_eq((res["prompt_after_reload"], res["profile_after_reload"]), (False, "low"),
             "after a reload, Low CPU works without asking for the token again")
    check_eq((res["cookies"], res["local_storage"], res["session_token"], res["token_in_urls"]),
             ([], [], True, False),
             "cookies, localStorage keys, the token in sessionStorage, the token in a URL")
    auths = [c["auth"] for c in res["controls"] if c["url"].startswith(a.url("/"))]
    check_eq(auths, ["other", "token", "token"],
             "Authorization of the POSTs to the app with a token (wrong, right, after reload)")
    check(res["open_note"].startswith("Anyone who can reach this server") and
          not res["open_prompt"],
          "an open app says so and asks no token: note %r, prompt %r"
          % (res["open_note"], res["open_prompt"]))
    check_eq(res["external"], [], "requests to anywhere but the apps")
    # Chromium logs the 401 of the wrong token as a console error: that one only
    refused = [e for e in res["console_errors"] if "status of 401" in e]
    check_eq((len(refused), [e for e in res["console_errors"] if e not in refused]), (1, []),
             "errors in the browser console: the wrong token's 401, nothing else")
    check(os.path.getsize(shot) > 10000, "a screenshot at %s" % shot)
    check_eq(a.stats()["profile"], "low", "profile in /stats after High then Low")
    check_eq(o.stats()["profile"], "low", "profile of the open app after Low")
    a.stop()
    o.stop()


if __name__ == "__main__":
    main()
