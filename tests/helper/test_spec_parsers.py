"""The spec parsers the webhook shares: good inputs, and bad ones giving short messages that quote the input."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helper.specs import (
    MAX_MESSAGE,
    HttpUrl,
    SpecError,
    WarmupRequest,
    parse_curve,
    parse_target,
    parse_targets,
    parse_url,
    parse_urls,
    parse_warmup_request,
    parse_warmup_requests,
)

# --- curve ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "k", "floor"),
    [
        ("linear", 1.0, 0.10),
        ("k=2", 2.0, 0.10),
        ("k=1.5,min=5%", 1.5, 0.05),
        ("aggression=1.5,min=5%", 1 / 1.5, 0.05),
        ("aggression=0.5", 2.0, 0.10),
        (" LINEAR , MIN = 0% ", 1.0, 0.0),
        ("min=20,linear", 1.0, 0.20),
        ("k=100", 100.0, 0.10),
    ],
)
def test_curves(spec: str, k: float, floor: float) -> None:
    curve = parse_curve(spec)
    assert curve.k == pytest.approx(k)
    assert curve.min_fraction == pytest.approx(floor)


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("", "empty"),
        ("quadratic", "unknown part"),
        ("k=abc", "not a number"),
        ("k=0", "k must be"),
        ("k=-1", "k must be"),
        ("k=101", "k must be"),
        ("k=nan", "finite"),
        ("aggression=0", "aggression must be"),
        ("linear,k=2", "given twice"),
        ("min=5%", "no shape"),
        ("linear,min=150%", "min must be"),
        ("linear,min=5%,min=6%", "given twice"),
        ("k", "unknown part"),
    ],
)
def test_bad_curves(spec: str, reason: str) -> None:
    with pytest.raises(SpecError) as error:
        parse_curve(spec)
    message = str(error.value)
    assert reason in message
    assert message.startswith("bad warm-up curve '")
    assert len(message) <= MAX_MESSAGE


# --- warm-up requests ----------------------------------------------------------------------------------------


def test_warmup_requests_with_defaults() -> None:
    assert parse_warmup_requests("GET /api/items x50 c4, /healthz x5") == (
        WarmupRequest("GET", "/api/items", 50, 4),
        WarmupRequest("GET", "/healthz", 5, 1),
    )
    assert parse_warmup_requests("post /login?next=/x c2 x3,") == (WarmupRequest("POST", "/login?next=/x", 3, 2),)
    assert parse_warmup_request("/") == WarmupRequest("GET", "/", 1, 1)


@pytest.mark.parametrize("request_", [WarmupRequest("HEAD", "/a", 7, 3), WarmupRequest("GET", "/b?c=d", 1, 1)])
def test_warmup_request_round_trips_through_its_text(request_: WarmupRequest) -> None:
    assert parse_warmup_request(str(request_)) == request_


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("", "empty"),
        (" , ", "empty"),
        ("GET", "missing path"),
        ("api/items", "must start with /"),
        ("GET api", "missing path"),
        ("/a x0", "count must be"),
        ("/a x10001", "count must be"),
        ("/a c0", "concurrency must be"),
        ("/a c65", "concurrency must be"),
        ("/a x2 x3", "given twice"),
        ("/a fast", "unknown option"),
        ("G3T /a", "must start with /"),
        ("/a\x00b", "invalid characters"),
    ],
)
def test_bad_warmup_requests(spec: str, reason: str) -> None:
    with pytest.raises(SpecError) as error:
        parse_warmup_requests(spec)
    message = str(error.value)
    assert reason in message
    assert "e.g. 'GET /api/items x50 c4'" in message or reason in ("empty",)
    assert len(message) <= MAX_MESSAGE


# --- prewarm targets and URLs --------------------------------------------------------------------------------


def test_targets_of_every_kind() -> None:
    tcp, dns, http, https, v6 = parse_targets(
        "tcp://postgres.db:5432, dns://auth.shop.svc,http://a:8080/h?x=1#204,https://auth/healthz,https://[::1]:8443/"
    )
    assert (tcp.kind, tcp.host, tcp.port) == ("tcp", "postgres.db", 5432)
    assert (dns.kind, dns.host, dns.port) == ("dns", "auth.shop.svc", None)
    assert http.url == HttpUrl("http", "a", 8080, "/h?x=1") and http.expect_status == 204
    assert https.url == HttpUrl("https", "auth", 443, "/healthz") and https.expect_status is None
    assert v6.host == "::1" and v6.port == 8443 and v6.url is not None and v6.url.host_header == "[::1]:8443"
    assert str(tcp) == "tcp://postgres.db:5432"


def test_target_defaults() -> None:
    assert parse_target("http://svc").url == HttpUrl("http", "svc", 80, "/")
    assert parse_target("HTTPS://svc?probe=1").url == HttpUrl("https", "svc", 443, "/?probe=1")
    assert parse_target("tcp://10.0.0.7:6379/").port == 6379


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("postgres:5432", "missing scheme"),
        ("ftp://files", "unknown scheme"),
        ("tcp://db", "needs a port"),
        ("tcp://db:0", "port must be"),
        ("tcp://db:65536", "port must be"),
        ("tcp://db:http", "port must be"),
        ("tcp://db:5432/x", "takes no path"),
        ("dns://db:53", "takes no port"),
        ("dns://", "missing host"),
        ("http://user:pw@db/", "credentials"),
        ("http://db/#abc", "#status must be"),
        ("http://db/#600", "#status must be"),
        ("https://db /x", "spaces"),
        ("tcp://-bad-.host:1", "invalid host"),
        ("tcp://a..b:1", "invalid host"),
        ("http://[::1/", "unclosed"),
        ("http://[zz::1]/", "invalid IPv6"),
        ("", "empty"),
    ],
)
def test_bad_targets(spec: str, reason: str) -> None:
    with pytest.raises(SpecError) as error:
        parse_targets(spec)
    message = str(error.value)
    assert reason in message
    assert len(message) <= MAX_MESSAGE
    if spec:
        assert f"'{spec.strip()}'" in message  # quotes the bad input in full when it is short


def test_bad_target_message_shows_an_example() -> None:
    with pytest.raises(SpecError) as error:
        parse_target("ftp://x")
    message = str(error.value)
    assert message == "bad prewarm target 'ftp://x': unknown scheme; e.g. tcp://db:5432 or https://h/health#200"


def test_notify_urls() -> None:
    assert parse_urls("http://gw:8080/offline, https://registry/api/offline") == (
        HttpUrl("http", "gw", 8080, "/offline"),
        HttpUrl("https", "registry", 443, "/api/offline"),
    )
    assert str(parse_url("http://gw:80/x")) == "http://gw/x"
    with pytest.raises(SpecError, match="no #fragment"):
        parse_url("http://gw/x#200")
    with pytest.raises(SpecError, match="scheme must be http or https"):
        parse_url("tcp://gw:1")


def test_long_input_is_cut_to_fit_the_warning_budget() -> None:
    with pytest.raises(SpecError) as error:
        parse_target("tcp://" + "a" * 500 + ":99999")
    message = str(error.value)
    assert len(message) <= MAX_MESSAGE and "..." in message


@pytest.mark.parametrize("parse", [parse_curve, parse_warmup_requests, parse_targets, parse_urls])
def test_non_strings_are_spec_errors(parse: Callable[[Any], Any]) -> None:
    with pytest.raises(SpecError, match="not a string"):
        parse(42)


@pytest.mark.parametrize("parse", [parse_curve, parse_warmup_requests, parse_targets, parse_urls])
@given(text=st.text(max_size=300))
def test_any_text_parses_or_gives_a_short_spec_error(parse: Callable[[str], Any], text: str) -> None:
    try:
        parse(text)
    except SpecError as error:
        assert 0 < len(str(error)) <= MAX_MESSAGE
        assert "\n" not in str(error)


@given(
    text=st.text(
        alphabet=st.sampled_from(list("tcpdnshtp:/[]#@?.,=%xkc0123456789 -ab")),
        max_size=60,
    )
)
def test_spec_alphabet_soup_never_crashes(text: str) -> None:
    for parse in (parse_curve, parse_warmup_requests, parse_targets, parse_urls):
        try:
            parse(text)
        except SpecError as error:
            assert len(str(error)) <= MAX_MESSAGE
