"""/mutate answers byte-for-byte what the pre-optimisation implementation answered (issue #15.3).

tests/bench/golden/admission_mutate.json was recorded from the code before the admission hot path was optimised
(tests/bench/admission_corpus.py says how); any speed-up of parsing, mutation or serialisation must leave every
answer, including the API server's second (already-injected) call, identical down to the byte.
"""

from __future__ import annotations

import json

import pytest

from tests.bench.admission_corpus import GOLDEN, answers, corpus

RECORDED = json.loads(GOLDEN.read_text())["cases"]
CURRENT = {case["name"]: case for case in answers()}


def test_the_corpus_is_the_recorded_one() -> None:
    assert [name for name, _ in corpus()] == [case["name"] for case in RECORDED]


@pytest.mark.parametrize("recorded", RECORDED, ids=[case["name"] for case in RECORDED])
def test_answer_is_byte_identical_to_the_recorded_one(recorded: dict[str, object]) -> None:
    assert CURRENT[str(recorded["name"])] == recorded
