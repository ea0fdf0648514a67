"""Single setting values: lane, app, port, prewarm policy, switches, tag header, agent port."""

from __future__ import annotations

import pytest

from webhook.contract.values import (
    app_from_name,
    parse_agent_port,
    parse_app,
    parse_lane,
    parse_policy,
    parse_port,
    parse_switch,
    parse_tag_header,
)


@pytest.mark.parametrize("lane", ["base", "gray", "canary-2", "a", "x" * 63, "0day"])
def test_lane_accepts_dns_labels(lane: str) -> None:
    assert parse_lane(lane) == lane


@pytest.mark.parametrize("lane", ["Gray", "gray_1", "-gray", "gray-", "x" * 64, "", "gray.blue", "gr ay"])
def test_lane_rejects_what_is_not_a_dns_label_and_suggests_one(lane: str) -> None:
    with pytest.raises(ValueError, match=r"e\.g\.") as info:
        parse_lane(lane)
    suggestion = str(info.value).rsplit("e.g. ", 1)[1]
    assert parse_lane(suggestion) == suggestion  # the example itself is valid


def test_lane_suggestion_stays_close_to_the_input() -> None:
    with pytest.raises(ValueError, match=r"e\.g\. gray-1"):
        parse_lane("Gray_1")


@pytest.mark.parametrize("app", ["checkout", "Checkout.v2", "a_b-c", "x" * 63])
def test_app_accepts_label_values(app: str) -> None:
    assert parse_app(app) == app


@pytest.mark.parametrize("app", ["", "x" * 64, "-x", "a b", "a/b"])
def test_app_rejects_non_label_values(app: str) -> None:
    with pytest.raises(ValueError, match=r"e\.g\. checkout"):
        parse_app(app)


def test_app_from_name_trims_to_a_label_value() -> None:
    assert app_from_name("web-") == "web"
    assert app_from_name("x" * 70) == "x" * 63
    assert app_from_name("---") is None


def test_port_number_or_name() -> None:
    assert parse_port("8080") == 8080
    assert parse_port("http") == "http"
    assert parse_port(" grpc-web ") == "grpc-web"
    for bad in ("0", "65536", "http--x", "-http", "UPPER", "this-name-is-too-long", "12-34", ""):
        with pytest.raises(ValueError, match=r"e\.g\."):
            parse_port(bad)


def test_policy_and_switch_are_case_insensitive() -> None:
    assert parse_policy("Require") == "require"
    assert parse_policy("warn") == "warn"
    assert parse_switch("FALSE") is False
    assert parse_switch("true") is True
    assert parse_switch(False) is False
    with pytest.raises(ValueError, match="warn or require"):
        parse_policy("block")
    with pytest.raises(ValueError, match="true or false"):
        parse_switch("no")


def test_tag_header_is_a_header_token_lowercased() -> None:
    assert parse_tag_header("X-Lane") == "x-lane"
    with pytest.raises(ValueError, match="header"):
        parse_tag_header("x lane")


def test_agent_port_stays_clear_of_istio() -> None:
    assert parse_agent_port(15400) == 15400
    assert parse_agent_port("9000") == 9000
    for bad in (15000, 15090, "15021", 0, 70000, True, "x"):
        with pytest.raises(ValueError):
            parse_agent_port(bad)
