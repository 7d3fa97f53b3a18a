"""Hidden grader, lesson 13: cache-aware routing."""

import random

import pytest

from exercises.lesson13.radix_cache import RadixCache
from exercises.lesson13.routing import Replica, route


class Probe:
    """A cache with a fixed hit that records how it is probed."""

    def __init__(self, hit):
        self.hit, self.calls = hit, []

    def match_prefix(self, tokens, touch=True):
        self.calls.append(touch)
        hit = min(self.hit, len(tokens))

        class Match:
            num_tokens = hit
        return Match()


def expected_route(hits, loads, gap):
    floor = min(loads)
    ok = [i for i in range(len(loads)) if loads[i] - floor <= gap]
    return sorted(ok, key=lambda i: (-hits[i], loads[i], i))[0]


@pytest.mark.points(3)
def test_route_follows_the_rule_on_random_fleets():
    """Bug: the longest hit regardless of load (one replica takes a popular prefix's whole
    traffic); the bound measured from the first replica's load or from the chosen one
    rather than the least loaded; ties broken by the last index or by hit only."""
    rng = random.Random(13)
    for _ in range(300):
        n = rng.randint(1, 5)
        hits = [rng.choice([0, 16, 32, 64]) for _ in range(n)]
        loads = [rng.randint(0, 12) for _ in range(n)]
        gap = rng.randint(0, 6)
        got = route(list(range(100)), [Replica(Probe(h), l) for h, l in zip(hits, loads)], gap)
        want = expected_route(hits, loads, gap)
        assert got == want, f"hits {hits}, loads {loads}, max_load_gap {gap}: routed to " \
                            f"{got}, the rule says {want}"


@pytest.mark.points(1)
def test_load_exactly_at_the_bound_is_eligible():
    """Bug: a strict inequality: a replica exactly max_load_gap above the least loaded is
    eligible by the documented rule."""
    reps = [Replica(Probe(0), 10), Replica(Probe(48), 14)]
    assert route([1] * 64, reps, max_load_gap=4) == 1
    assert route([1] * 64, reps, max_load_gap=3) == 0


@pytest.mark.points(1)
def test_routing_probes_without_touching_and_only_the_eligible():
    """Bug: probing with a touching match (every replica's LRU refreshed by requests that
    went elsewhere), or probing replicas the load bound already excludes (a tree walk each,
    for nothing)."""
    probes = [Probe(8), Probe(32), Probe(64)]
    reps = [Replica(probes[0], 0), Replica(probes[1], 1), Replica(probes[2], 50)]
    assert route(list(range(64)), reps, max_load_gap=8) == 1
    assert probes[0].calls == [False] and probes[1].calls == [False], \
        f"probes must pass touch=False; got {probes[0].calls}, {probes[1].calls}"
    assert probes[2].calls == [], "replica 2 is over the load bound: it must not be probed"


@pytest.mark.points(1)
def test_route_with_real_radix_caches():
    """Bug: a router that works on a fake and not on the lesson's own cache (the engine's
    interface); routing on the prompt's raw length instead of its cached prefix."""
    a, b = RadixCache(4), RadixCache(4)
    system = list(range(32))
    a.insert(system + [1, 1, 1, 1], list(range(9)))
    b.insert([0] * 8, [0, 1])
    reps = [Replica(b, 0), Replica(a, 2)]
    assert route(system + [5, 5, 5, 5], reps, max_load_gap=2) == 1
    assert route([0] * 8 + [3], reps, max_load_gap=2) == 0
    with pytest.raises(ValueError):
        route([1], [Replica(a, -1)])
    with pytest.raises(ValueError):
        route([1], [Replica(a, 0)], max_load_gap=-1)
