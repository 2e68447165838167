"""Multi-host scenarios 1, 2 and 4 (bench/multihost runs all six): three
scalerd nodes (bully) on three hosts, Redis on a fourth, a Swarm of three
managers as the servers' hosts, zone1's balancer on the first scalerd host,
traffic through it during every fault. After each scenario: Redis records =
running tasks = the balancer's server set, no orphan, no stale action."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scalertest import *  # noqa: E402,F403
from mhbed import Swarm, Scalers, Traffic, bed_unavailable  # noqa: E402
import scenarios  # noqa: E402

SC = None


def bed():
    global SC
    if SC is None:
        why = bed_unavailable()
        if why:
            skip(why)
        SC = Scalers(Swarm(managers=3), nodes=3, zone_min=3, zone_max=8)
        SC.start_all()
        SC.converge(60, "the zone at its minimum of 3 servers, everywhere the same")
    return SC


def logs_tail(sc, lines=40):
    """What each scalerd said last (debug lines left out), for a failure."""
    for i in sorted(sc.hosts):
        said = [l for l in sc.log_of(i).splitlines() if " debug: " not in l]
        log("---- scalerd node %d, last %d lines:" % (i, lines))
        for l in said[-lines:]:
            log(l)


def run(scenario):
    sc = bed()
    try:
        r = scenario(sc, Traffic)
    except Exception:
        logs_tail(sc)
        raise
    for name, (value, goal) in r.figures.items():
        log("%s: %.2f%s" % (name, value, " (goal %g)" % goal if goal is not None else ""))
    log("%d failed of %d requests; converged in %s s; %d stale actions" % (
        r.failed, r.total, "%.1f" % r.converge if r.converge is not None else "-", r.stale))
    for n in r.notes:
        log(n)
    if not r.held:
        logs_tail(sc)
    check(r.held, "scenario %d (%s) held: %s" % (r.number, r.title, r.why()))


@test
def the_zone_starts_at_its_minimum_with_servers_on_several_hosts():
    sc = bed()
    check_eq(len(sc.records()), 3, "servers in Redis")
    check(len(set(sc.nodes_of_servers().values())) >= 2, "servers on several hosts: %r" % sc.nodes_of_servers())
    check_eq(sorted(r[0] for r in sc.roles().values()), ["backup", "backup", "primary"], "roles")


@test
def scenario_1_scaling_up_and_down_spreads_servers_over_hosts():
    run(scenarios.scale_up_and_down_across_hosts)


@test
def scenario_2_a_lost_host_s_servers_are_replaced_elsewhere():
    run(scenarios.worker_host_lost)


@test
def scenario_4_a_primary_cut_from_redis_stops_and_is_fenced():
    run(scenarios.primary_cut_from_redis)


if __name__ == "__main__":
    main()
