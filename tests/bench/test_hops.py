"""Write → visible split hop by hop (``bench/tools/hops.py``): the arithmetic, pure, no I/O."""

from __future__ import annotations

import pytest

from bench.tools.hops import HOPS, Hops, hops_cell


def _hops() -> Hops:
    hops = Hops("127.0.0.1:9092", "bench-x-", "t1")
    # Wall clock = perf_counter + 1000 s. Alert a: answered at 1010.000, its alert record made 2 ms later,
    # response time's 40 ms after that, visible 100 ms after the answer.
    hops.alert_records.update({"a": 1010.002, "b": 1020.000, "only-created": 1030.0})
    hops.response_time_records.update({"a": 1010.042, "b": 1020.010})
    return hops


def test_each_alert_splits_into_the_relay_and_the_read_api_with_response_time_beside() -> None:
    split = _hops().split({"a": 10.0, "b": 20.001, "only-created": 30.0}, {"a": 100.0, "b": 20.0, "only-created": 5.0},
                          to_wall=1000.0)
    relay, read_api, response_time = (split[name] for name in HOPS)
    # a: 2 + 98 = 100 ms, response time's record 40 ms after the alert's; b: the relay sent 1 ms before the
    # answer arrived (below zero), then 21; response time's 10.
    assert relay == pytest.approx([2.0, -1.0], abs=1e-6)
    assert read_api == pytest.approx([98.0, 21.0], abs=1e-6)
    assert response_time == pytest.approx([40.0, 10.0], abs=1e-6)
    # An alert whose response-time record was not read is left out of every hop (not counted as zero).
    assert all(len(ms) == 2 for ms in split.values())


def test_the_cell_gives_each_hop_p50_and_p99_and_how_many_alerts() -> None:
    split = _hops().split({"a": 10.0}, {"a": 100.0}, to_wall=1000.0)
    split["write API's relay"] = [-0.3]  # shown as 0, not "-0"
    assert hops_cell(split) == ("write API's relay 0 / 0 ms; read API 98 / 98 ms; response time (beside) 40 / 40 ms "
                                "(p50 / p99, 1 alert)")
    assert hops_cell({name: [] for name in HOPS}) == "no alert's two records were read"
