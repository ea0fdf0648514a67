"""The ``lanes.io/registry`` value for Nacos, parsed once: ``nacos://HOST[:PORT][/CONTEXT]?service=...&...``.

    nacos://nacos.infra:8848?service=orders&group=DEFAULT_GROUP&namespace=dev&cluster=DEFAULT&mode=register

The webhook parses it to validate the annotation (and warns, naming the bad part); the agent parses the same
string from ``LANES_REGISTRY``. Pure and standard-library only, because both sides import it.

Query parameters (all optional):

- ``service``: the Nacos service name (default: the pod's ``lanes.io/app``);
- ``group`` (``DEFAULT_GROUP``), ``namespace`` (namespace *id*; default: ``public``), ``cluster`` (``DEFAULT``);
- ``mode``: ``register`` (the agent owns the instance) or ``manage`` (the app registers itself; the agent takes
  that instance out of service until ready, ramps it and takes it out at preStop);
- ``port``: the instance's port (default: the app port, ``lanes.io/port``), e.g. a Dubbo port;
- ``weight``: the full weight the ramp ends at (default 1, Nacos's default; 0.01..10000);
- ``api``: ``v2`` (a Nacos 2.x server: the v1/v2 open API; default) or ``v3`` (a Nacos 3.x server: the
  ``/nacos/v3/admin/ns/...`` admin API).

Credentials never go in the URL (they would be in the pod spec in clear): ``lanes.io/registry-secret`` names a
Secret whose ``username``/``password`` or ``accessToken`` keys the agent gets as env from the Secret.
"""

from __future__ import annotations

import math
import re
from urllib.parse import parse_qsl, urlsplit

from helper.record import record, replace

SCHEME = "nacos"
DEFAULT_PORT = 8848
DEFAULT_GROUP = "DEFAULT_GROUP"
DEFAULT_CLUSTER = "DEFAULT"
DEFAULT_CONTEXT = "/nacos"
MODES = ("register", "manage")
APIS = ("v2", "v3")
EXAMPLE = "nacos://nacos.infra:8848?service=orders&mode=register"
_NAME = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_HOST = re.compile(r"[A-Za-z0-9.\-]{1,253}|\[[0-9A-Fa-f:.]+\]")
_CONTEXT = re.compile(r"(/[A-Za-z0-9._\-]+)+")
_PARAMS = ("service", "group", "namespace", "cluster", "mode", "port", "weight", "api")


class RegistryUrlError(ValueError):
    """The value cannot be used; the message names the bad part and shows a good value."""


@record(frozen=True, slots=True)
class NacosTarget:
    host: str
    port: int = DEFAULT_PORT
    context: str = DEFAULT_CONTEXT
    service: str | None = None
    """None: the pod's app name (``lanes.io/app``), filled in by :meth:`for_app`."""
    group: str = DEFAULT_GROUP
    namespace: str = ""
    """The namespace id; empty means Nacos's ``public`` namespace."""
    cluster: str = DEFAULT_CLUSTER
    mode: str = "register"
    instance_port: int | None = None
    """None: the app port."""
    weight: float | None = None
    """None: 1.0 in register mode, the app's own weight in manage mode."""
    api: str = "v2"

    @property
    def origin(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def grouped_service(self) -> str:
        """``GROUP@@service``, the name Nacos's 2.x HTTP API wants for heartbeats and patches."""
        return f"{self.group}@@{self.service}"

    def for_app(self, app: str) -> NacosTarget:
        """This target with ``service`` defaulted to the pod's app name."""
        if self.service is not None:
            return self
        if not app or not _NAME.fullmatch(app):
            raise RegistryUrlError(f"no service= given and the app name {app!r} is not a Nacos service name")
        changed: NacosTarget = replace(self, service=app)
        return changed


def _fail(part: str, value: str, want: str) -> RegistryUrlError:
    shown = value if len(value) <= 60 else value[:57] + "..."
    return RegistryUrlError(f"{part} {shown!r}: {want}; e.g. {EXAMPLE}")


def parse(text: str) -> NacosTarget:
    """Parse a ``nacos://`` URL; raises :class:`RegistryUrlError` naming the bad part."""
    raw = text.strip()
    if any(c.isspace() or not c.isprintable() for c in raw):
        raise _fail("registry", raw, "no spaces or control characters")
    parts = urlsplit(raw)
    if parts.scheme.lower() != SCHEME:
        raise _fail("scheme", parts.scheme or raw, f"want {SCHEME}://")
    if "@" in parts.netloc:
        raise RegistryUrlError(
            "registry: credentials do not belong in the URL (they would be in the pod spec in clear);"
            " put username/password or accessToken in a Secret named by lanes.io/registry-secret"
        )
    host = parts.hostname or ""
    written = parts.netloc.split("]")[0] + "]" if parts.netloc.startswith("[") else parts.netloc.split(":")[0]
    if not host or not _HOST.fullmatch(written):
        raise _fail("host", parts.netloc or raw, "want a host name or IP address")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise _fail("port", parts.netloc, "want a port number 1..65535") from None
    if not 1 <= port <= 65535:
        raise _fail("port", str(port), "want a port number 1..65535")
    context = parts.path.rstrip("/") or DEFAULT_CONTEXT
    if not _CONTEXT.fullmatch(context):
        raise _fail("path", parts.path, "want the server's context path, e.g. /nacos, or none")
    if parts.fragment:
        raise _fail("fragment", parts.fragment, "want none")
    values: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        if key not in _PARAMS:
            raise _fail("parameter", key, f"unknown; known are {', '.join(_PARAMS)}")
        if key in values:
            raise _fail("parameter", key, "given twice")
        values[key] = value
    if parts.query and not values:
        raise _fail("query", parts.query, "want key=value pairs joined by &")
    for key in ("service", "group", "cluster"):
        if key in values and not _NAME.fullmatch(values[key]):
            raise _fail(key, values[key], "want 1-128 of A-Z a-z 0-9 . _ : -")
    namespace = values.get("namespace", "")
    if namespace and not _NAME.fullmatch(namespace):
        raise _fail("namespace", namespace, "want a namespace id: 1-128 of A-Z a-z 0-9 . _ : -")
    mode = values.get("mode", "register").lower()
    if mode not in MODES:
        raise _fail("mode", values["mode"], f"want one of {', '.join(MODES)}")
    api = values.get("api", "v2").lower()
    if api not in APIS:
        raise _fail("api", values["api"], "want v2 (a Nacos 2.x server) or v3 (a Nacos 3.x server)")
    instance_port = None
    if "port" in values:
        if not values["port"].isdigit() or not 1 <= int(values["port"]) <= 65535:
            raise _fail("port", values["port"], "want the instance's port number 1..65535")
        instance_port = int(values["port"])
    weight = None
    if "weight" in values:
        try:
            weight = float(values["weight"])
        except ValueError:
            weight = math.nan
        if not (math.isfinite(weight) and 0.01 <= weight <= 10000):
            raise _fail("weight", values["weight"], "want the full weight, 0.01 to 10000 (Nacos's range)")
    return NacosTarget(
        host=host,
        port=port,
        context=context,
        service=values.get("service"),
        group=values.get("group") or DEFAULT_GROUP,
        namespace="" if namespace == "public" else namespace,
        cluster=values.get("cluster") or DEFAULT_CLUSTER,
        mode=mode,
        instance_port=instance_port,
        weight=weight,
        api=api,
    )
