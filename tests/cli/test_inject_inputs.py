"""``lanes inject`` reads its inputs like ``kubectl apply -f`` (issue 11.6).

Several ``-f`` are all read, in order; a directory stands for its ``*.yaml``/``*.yml``/``*.json`` files in name order
(``-R`` adds subdirectories); ``-`` is stdin; duplicate mapping keys are rejected naming file and line; pod templates
of ReplicationControllers and OpenShift DeploymentConfigs are injected (the webhook injects their pods); input
without objects is an error, like kubectl's "no objects passed to apply". Every case runs the installed command.
"""

from __future__ import annotations

from pathlib import Path

from tests.cli.support import assert_user_error, config_of, documents, lanes


def pod(name: str) -> str:
    return f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: app\n    image: x\n"


def service(name: str) -> str:
    return f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  ports:\n  - port: 80\n"


def names_of(text: str) -> list[str]:
    return [doc["metadata"]["name"] for doc in documents(text)]


def test_every_filename_is_read_in_order(tmp_path: Path) -> None:
    (tmp_path / "one.yaml").write_text(pod("first") + "---\n" + service("first-svc"))
    (tmp_path / "two.yaml").write_text(pod("second"))
    done = lanes("inject", "-f", str(tmp_path / "one.yaml"), "--filename", str(tmp_path / "two.yaml"))
    assert done.returncode == 0, done.stderr
    assert names_of(done.stdout) == ["first", "first-svc", "second"]
    assert all("lanes.io/status" in doc["metadata"].get("annotations", {}) for doc in documents(done.stdout)
               if doc["kind"] == "Pod")


def test_warnings_name_the_file_when_there_are_several(tmp_path: Path) -> None:
    bad = pod("odd").replace("  name: odd\n", "  name: odd\n  annotations:\n    lanes.io/drain: forever\n")
    (tmp_path / "a.yaml").write_text(pod("fine"))
    (tmp_path / "b.yaml").write_text(bad)
    done = lanes("inject", "-f", str(tmp_path / "a.yaml"), "-f", str(tmp_path / "b.yaml"))
    assert done.returncode == 0, done.stderr
    assert f"warning: {tmp_path / 'b.yaml'} doc 1 Pod/odd: lanes.io/drain" in done.stderr


def test_stdin_and_files_mix(tmp_path: Path) -> None:
    (tmp_path / "file.yaml").write_text(pod("from-file"))
    done = lanes("inject", "-f", str(tmp_path / "file.yaml"), "-f", "-", stdin=pod("from-stdin"))
    assert done.returncode == 0, done.stderr
    assert names_of(done.stdout) == ["from-file", "from-stdin"]


def test_a_directory_is_its_manifest_files_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text(pod("b"))
    (tmp_path / "a.yml").write_text(pod("a"))
    (tmp_path / "c.json").write_text(
        '{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "c"},'
        ' "spec": {"containers": [{"name": "app", "image": "x"}]}}'
    )
    (tmp_path / "README.md").write_text("not a manifest: {{ nor YAML")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.yaml").write_text(pod("d"))
    flat = lanes("inject", "-f", str(tmp_path))
    assert flat.returncode == 0, flat.stderr
    assert names_of(flat.stdout) == ["a", "b", "c"]
    deep = lanes("inject", "-R", "-f", str(tmp_path))
    assert deep.returncode == 0, deep.stderr
    assert names_of(deep.stdout) == ["a", "b", "c", "d"]


def test_a_directory_without_manifests_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    assert_user_error(lanes("inject", "-f", str(tmp_path)), str(tmp_path), ".yaml")


def test_a_missing_path_is_an_error(tmp_path: Path) -> None:
    assert_user_error(lanes("inject", "-f", str(tmp_path / "nope.yaml")), "nope.yaml", "does not exist")


def test_duplicate_keys_are_rejected_naming_file_document_and_line(tmp_path: Path) -> None:
    text = service("ok") + "---\n" + pod("dup").replace("  - name: app\n", "  - name: app\n    name: other\n")
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    done = lanes("inject", "-f", str(path))
    assert_user_error(done, str(path), "document 2", "line 16", "duplicate key 'name'", "first at line 15")


def test_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    text = "kind: ConfigMap\nmetadata: {name: m}\nbase: &b {x: '1'}\ndata:\n  <<: *b\n  z: '2'\n"
    done = lanes("inject", "-f", "-", stdin=text)
    assert done.returncode == 0, done.stderr
    assert documents(done.stdout)[0]["data"] == {"x": "1", "z": "2"}


def test_replication_controller_and_deployment_config_templates_are_injected(tmp_path: Path) -> None:
    template = (
        "  replicas: 1\n  selector: {app: legacy}\n  template:\n    metadata:\n      labels: {app: legacy}\n"
        "    spec:\n      containers:\n      - name: app\n        image: x\n        ports: [{containerPort: 8080}]\n"
    )
    text = (
        "apiVersion: v1\nkind: ReplicationController\nmetadata: {name: legacy-rc}\nspec:\n" + template + "---\n"
        "apiVersion: apps.openshift.io/v1\nkind: DeploymentConfig\nmetadata: {name: legacy-dc}\nspec:\n" + template
    )
    done = lanes("inject", "-f", "-", stdin=text)
    assert done.returncode == 0, done.stderr
    rc, dc = documents(done.stdout)
    for workload in (rc, dc):
        tpl = workload["spec"]["template"]
        assert config_of(tpl)["app"] == "legacy"
        assert any(c["name"] == "lanes-agent" for c in tpl["spec"].get("initContainers", [])), workload["kind"]


def test_the_app_of_a_replication_controller_without_labels_is_its_name() -> None:
    text = (
        "apiVersion: v1\nkind: ReplicationController\nmetadata: {name: old-web}\nspec:\n  template:\n"
        "    spec:\n      containers: [{name: app, image: x}]\n"
    )
    done = lanes("inject", "-f", "-", stdin=text)
    assert done.returncode == 0, done.stderr
    assert config_of(documents(done.stdout)[0]["spec"]["template"])["app"] == "old-web"


def test_empty_input_is_an_error_like_kubectl_apply(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert_user_error(lanes("inject", "-f", str(empty)), "no objects passed to inject", str(empty))
    comments = tmp_path / "comments.yaml"
    comments.write_text("# nothing here\n---\n---\n")
    assert_user_error(lanes("inject", "-f", str(comments)), "no objects passed to inject")
    assert_user_error(lanes("inject", "-f", "-", stdin=""), "no objects passed to inject", "<stdin>")


def test_stdin_twice_is_an_error() -> None:
    assert_user_error(lanes("inject", "-f", "-", "-f", "-", stdin=pod("p")), "stdin")


def test_json_input_is_read_as_json_tabs_and_all(tmp_path: Path) -> None:
    """``json.MarshalIndent(v, "", "\\t")`` output: valid JSON that no YAML parser accepts (tabs)."""
    path = tmp_path / "tabs.json"
    path.write_text(
        '{\n\t"apiVersion": "v1",\n\t"kind": "ConfigMap",\n\t"metadata": {"name": "tabs"},\n'
        '\t"data": {"answer": "n"}\n}\n{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "two"}}\n'
    )
    done = lanes("inject", "-f", str(path))
    assert done.returncode == 0, done.stderr
    assert names_of(done.stdout) == ["tabs", "two"]
    assert "answer: 'n'\n" in done.stdout


def test_duplicate_keys_in_json_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "dup.json"
    path.write_text('{"kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"x": "1", "x": "2"}}')
    assert_user_error(lanes("inject", "-f", str(path)), str(path), "duplicate key 'x'")
