"""The contract in code: names match docs/reference.md's and the helper's."""

from __future__ import annotations

import helper.env as helper_env
from webhook.contract import names


def test_env_names_mirror_the_helper() -> None:
    helper_names = {value for key, value in vars(helper_env).items() if key.isupper() and isinstance(value, str)
                    and value.startswith("LANES_")}
    ours = {value for key, value in vars(names).items() if key.startswith("ENV_") and value.startswith("LANES_")}
    assert helper_names <= ours, helper_names - ours


def test_every_name_carries_the_prefix() -> None:
    for key in names.KNOWN_ANNOTATIONS:
        assert key.startswith(names.PREFIX)
    assert names.CONDITION_REGISTERED.startswith(names.PREFIX)


def test_agent_port_name_is_a_valid_port_name() -> None:
    assert len(names.AGENT_PORT_NAME) <= 15
