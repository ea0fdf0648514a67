"""``lanes inject`` output means to kubectl what its input meant (issue 11.2).

The oracle is kubectl's own reading: hack/yamlcheck converts each document with sigs.k8s.io/yaml (go-yaml v2, as
kubectl v1.37 does). For every scalar of a corpus of tricky ones, written quoted (the user meant a string) and,
where YAML allows, plain (whatever kubectl makes of it), JSON(kubectl reads the input) must equal JSON(kubectl reads
the output) in ConfigMap data values and keys, annotations, and the env values of an injected Deployment.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools.yamlcheck import read_like_kubectl
from tests.cli.conftest import console_script


def words(text: str) -> list[str]:
    return text.split()


BOOLS = [
    *words("y Y n N yes Yes YES yEs no No NO nO on On ON oN off Off OFF oFF"),
    *words("true True TRUE tRUE false False FALSE fALSE"),
]
NUMBERS = [
    *words("1e3 5e3 1E3 12e03 -.5e3 .5 +.5 -.5 1. 1.5 .inf -.inf +.inf .Inf .INF .NaN .nan .NAN"),
    *words("0o17 0O17 0x1F 0X1f -0x1F 0b1 0B1 -0b1 1_000 1_ 1__0 0_1 0.1_2 _1 010 08 019 0 -0 +0 00 +1 -1"),
    *words("1e400 99999999999999999999 18446744073709551615 9223372036854775808 -9223372036854775809"),
    *words("1:20 -1:20 190:20:30 1:20.5 1,000 0x 0o 0b 0xG 1e e3 + +-1 - . .. 1.2.3 0.0.1"),
]
NULLS = ["~", "null", "Null", "NULL", "nULL", ""]
DATES = [
    "2001-12-14", "2001-1-2", "2002-12-14T00:00:00Z", "2001-12-14t21:59:43.10-05:00", "2001-12-14 21:59:43.10",
    "2001-12-14 21:59:43.10 -5", "20011-12-14", "2001-12-14x",
]
OTHERS = [
    "=", "<<", "a: b", "a #b", "#x", "key: value # c", " leading", "trailing ", "- x", "? x", "@x", "`x", "!x",
    "&x", "*x", "%x", "|", ">", "x\ny", "line\n", "two\nlines\n", "tab\tx", "'", '"', "{}", "[]", "{a: 1}", "v1",
    "10Mi", "100m", "/path", "http://x:80/", "*.example.com", "TRUE1", "yes please", "NaN", "inf", "Infinity",
    "+inf", "-Infinity", "ünïcode", "a:b", "a: ", ":", "x:", "--- x", "...", "é\u00a0x",
]
CORPUS = list(dict.fromkeys(BOOLS + NUMBERS + NULLS + DATES + OTHERS))
#: Scalars valid as plain YAML values: the user wrote them unquoted and kubectl reads whatever it reads (plain
#: .inf and .nan are left out: kubectl cannot turn them into JSON at all).
PLAIN = [
    s
    for s in dict.fromkeys(BOOLS + NUMBERS + NULLS + DATES[:3] + ["=", "v1", "10Mi", "a:b", "NaN", "inf"])
    if s and s != "-" and s.lower().lstrip("+-") not in (".inf", ".nan")
]


def quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # JSON strings are valid double-quoted YAML scalars


def manifests() -> str:
    """A ConfigMap of quoted values and keys, one of plain values, and a Deployment with quoted and plain env."""
    data = "\n".join(f"  k{i}: {quoted(s)}" for i, s in enumerate(CORPUS))
    keys = "\n".join(f"  {quoted(s)}: v{i}" for i, s in enumerate(CORPUS) if s != "<<")
    plain = "\n".join(f"  p{i}: {s}" for i, s in enumerate(PLAIN))
    annotations = "\n".join(f"    a{i}: {quoted(s)}" for i, s in enumerate(CORPUS))
    env = "\n".join(f"        - name: E{i}\n          value: {quoted(s)}" for i, s in enumerate(CORPUS))
    plain_env = "\n".join(f"        - name: P{i}\n          value: {s}" for i, s in enumerate(PLAIN))
    return (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: quoted\n  annotations:\n{annotations}\ndata:\n{data}\n"
        f"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: keys\ndata:\n{keys}\n"
        f"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plain\ndata:\n{plain}\n"
        "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  annotations:\n"
        + annotations.replace("    a", "    d")
        + "\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata:\n      labels: {app: web}\n"
        "    spec:\n      containers:\n      - name: web\n        image: nginx:1.25\n"
        "        ports: [{containerPort: 8080}]\n        env:\n"
        f"{env}\n{plain_env}\n"
    )


def differences(before: Any, after: Any, path: str = "") -> list[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        found = [f"{path}.{k}: missing in the output" for k in before if k not in after]
        found += [f"{path}.{k}: added {after[k]!r}" for k in after if k not in before]
        for key in before.keys() & after.keys():
            found += differences(before[key], after[key], f"{path}.{key}")
        return found
    return [] if before == after else [f"{path}: kubectl read {before!r} in the input but {after!r} in the output"]


def env_of(deployment: dict[str, Any]) -> dict[str, Any]:
    """The user's env values (E0.., P0..) of the app container; the injected LANES_* ones are not compared."""
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    return {e["name"]: e.get("value") for e in env if e["name"][:1] in "EP" and e["name"][1:].isdigit()}


@pytest.fixture(scope="module")
def round_trip(yamlcheck: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Any], list[Any], str]:
    source = tmp_path_factory.mktemp("meaning") / "in.yaml"
    source.write_text(manifests(), encoding="utf-8")
    done = subprocess.run(
        [console_script("lanes"), "inject", "-f", str(source)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    before = read_like_kubectl(source.read_text(encoding="utf-8"), yamlcheck)
    after = read_like_kubectl(done.stdout, yamlcheck)
    return before, after, done.stdout


def test_kubectl_reads_the_input_as_intended(round_trip: tuple[list[Any], list[Any], str]) -> None:
    """The corpus itself is valid and quoted strings are strings to kubectl (so the comparison means something)."""
    before, _, _ = round_trip
    assert [doc.get("error") for doc in before] == [None] * 4
    quoted_cm, keys_cm, plain_cm, _ = (doc["json"] for doc in before)
    assert quoted_cm["data"] == {f"k{i}": s for i, s in enumerate(CORPUS)}
    assert keys_cm["data"] == {s: f"v{i}" for i, s in enumerate(CORPUS) if s != "<<"}
    assert plain_cm["data"]["p0"] is True  # plain `y` is a boolean to kubectl
    assert plain_cm["data"][f"p{PLAIN.index('1e3')}"] == 1000


@pytest.mark.parametrize(
    ("name", "pick"),
    [
        ("ConfigMap data values and annotations", lambda docs: docs[0]),
        ("ConfigMap data keys", lambda docs: docs[1]),
        ("ConfigMap plain values", lambda docs: docs[2]),
        ("Deployment annotations", lambda docs: docs[3]["metadata"]["annotations"]),
        ("Deployment env values", lambda docs: env_of(docs[3])),
    ],
)
def test_output_means_the_same_to_kubectl(
    round_trip: tuple[list[Any], list[Any], str], name: str, pick: Any
) -> None:
    before, after, _ = round_trip
    assert [doc.get("error") for doc in after] == [None] * 4, after
    old, new = pick([d["json"] for d in before]), pick([d["json"] for d in after])
    changed = differences(old, new)
    assert not changed, f"{name}: {len(changed)} scalars changed meaning:\n" + "\n".join(sorted(changed)[:40])


def test_output_stays_readable(round_trip: tuple[list[Any], list[Any], str]) -> None:
    """Only ambiguous strings are quoted; ordinary values stay plain, multi-line text becomes a literal block."""
    _, _, text = round_trip
    plain_lines = [f"k{CORPUS.index(s)}: {s}" for s in ("v1", "10Mi", "100m", "/path", "http://x:80/", "TRUE1")]
    for line in [*plain_lines, "image: nginx:1.25", "name: web"]:
        assert f"\n  {line}\n" in text or f" {line}\n" in text, line
    assert f"k{CORPUS.index('two' + chr(10) + 'lines' + chr(10))}: |\n    two\n    lines\n" in text
    for scalar in ("y", "n", "5e3", "0o17", "1_000", "010", "1:20", "2001-12-14", "="):
        assert f"k{CORPUS.index(scalar)}: '{scalar}'\n" in text, scalar


@pytest.mark.parametrize("scalar", CORPUS)
def test_every_ambiguous_string_is_quoted_for_yaml_1_1_and_1_2_readers(scalar: str) -> None:
    """Beyond kubectl: PyYAML (YAML 1.1) reads the dumped string back as the same string."""
    from webhook.injection import kubeyaml
    text = kubeyaml.dump_stream([{"k": scalar}])
    assert yaml.safe_load(text) == {"k": scalar}, text
    if kubeyaml.ambiguous(scalar):
        assert not text.startswith(f"k: {scalar}\n") or scalar == "", text


def test_random_short_strings_survive_kubectl(yamlcheck: Path) -> None:
    """Beyond the hand-picked corpus: 3000 short strings over the characters that make scalars ambiguous, dumped
    by the ``lanes inject`` dumper, are all read back by kubectl as those very strings (keys and values)."""
    import random

    from webhook.injection import kubeyaml

    rng = random.Random(11_2)
    alphabet = "yYnNoOfFtTeE0123456789_.+-:xXbB~ #=<"
    strings = sorted({"".join(rng.choices(alphabet, k=rng.randint(0, 7))) for _ in range(3000)})
    data = {f"k{i}": s for i, s in enumerate(strings)}
    keys = {s: f"v{i}" for i, s in enumerate(strings)}
    text = kubeyaml.dump_stream([{"kind": "ConfigMap", "data": data}, {"kind": "ConfigMap", "data": keys}])
    values_read, keys_read = read_like_kubectl(text, yamlcheck)
    assert values_read == {"json": {"kind": "ConfigMap", "data": data}}
    assert keys_read == {"json": {"kind": "ConfigMap", "data": keys}}
