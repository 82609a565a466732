"""The per-key token bucket (``shared.auth.TokenBucket``): pure, driven by the times it is given."""

from __future__ import annotations

import pytest

from shared.auth import TokenBucket, retry_after_seconds


def test_a_full_bucket_allows_its_burst_at_once_then_refuses():
    bucket = TokenBucket(rate=2.0, burst=3)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    # Empty: the next token comes after 1 / rate seconds.
    assert bucket.take(100.0) == pytest.approx(0.5)


def test_tokens_come_back_at_the_rate_and_never_beyond_the_burst():
    bucket = TokenBucket(rate=2.0, burst=3)
    for _ in range(3):
        bucket.take(0.0)
    assert bucket.take(0.25) == pytest.approx(0.25)  # half a token back: half a token's wait left
    assert bucket.take(0.5) == 0.0  # one token back after 1/rate s
    assert bucket.take(0.5) == pytest.approx(0.5)
    # An hour idle refills to the burst, not to 7200 tokens.
    assert [bucket.take(3600.0) for _ in range(4)][-1] == pytest.approx(0.5)


def test_a_refused_request_takes_no_token():
    bucket = TokenBucket(rate=1.0, burst=1)
    assert bucket.take(10.0) == 0.0
    for _ in range(5):  # hammering while empty does not push the next token further away
        assert bucket.take(10.5) == pytest.approx(0.5)
    assert bucket.take(11.0) == 0.0


def test_a_clock_going_back_adds_no_tokens():
    bucket = TokenBucket(rate=1.0, burst=1)
    assert bucket.take(10.0) == 0.0
    assert bucket.take(5.0) == pytest.approx(1.0)


@pytest.mark.parametrize(("wait", "header"), [(0.01, 1), (0.5, 1), (1.0, 1), (1.2, 2), (59.9, 60)])
def test_retry_after_is_whole_seconds_rounded_up_and_never_zero(wait, header):
    assert retry_after_seconds(wait) == header


def test_bucket_parameters_must_make_sense():
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1)
    with pytest.raises(ValueError):
        TokenBucket(rate=1, burst=0)
