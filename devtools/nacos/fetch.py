"""Fetch a Nacos server from Maven Central into ``~/.cache/lanes/nacos-<version>/`` (jars + ordered classpath).

The Nacos project publishes only its client jars to Maven Central. The one server found there is Nacos 2.3.2 as
republished by the JeecgBoot project (``org.jeecgframework.nacos:nacos-console:2.3.2``): its naming, core, config
and console jars hold the same classes as the upstream 2.3.2 sources, but it is a third-party build, and every
test and benchmark that uses it says so. There is no 3.x server to be had here.

A throwaway pom depending on it is resolved by ``mvn dependency:copy-dependencies`` (the jars, into ``lib/``) and
``dependency:build-classpath`` (their order). **The order matters**: with ``-cp 'lib/*'`` the JVM may load an
older hessian jar first and start-up fails (``SerializerFactory.getClassFactory()`` missing); Maven's order works.
Maven's local repository is a temporary directory, deleted afterwards, so nothing lands outside the cache; the
cache is written next to its final place and renamed into it only once complete. Cold: about 75 s and 118 MB.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VERSION = "2.3.2"
#: Named in full, not by the ``dependency:`` prefix: resolving a prefix needs the plugin group's metadata from the
#: repository, which a cold CI run once failed to get ("No plugin found for prefix 'dependency'").
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.11.0"
#: Attempts of the Maven run: Maven Central (or the mirror in front of it) refuses a request now and then.
ATTEMPTS = 4
RETRY_DELAYS = (10, 30, 60)
"""Seconds before each retry: a resolver hiccup here once lasted longer than two 10 s pauses (Unknown host
repo.maven.apache.org while curl resolved it), so the later pauses are longer."""
GROUP = "org.jeecgframework.nacos"
ARTIFACT = "nacos-console"
BUILD_NOTE = (
    f"Nacos {VERSION} server as republished on Maven Central by JeecgBoot ({GROUP}:{ARTIFACT}:{VERSION}),"
    " a third-party build of the upstream sources"
)
#: Left out: the Istio MCP bridge and the MySQL driver (standalone Derby needs neither): 149 MB -> 118 MB.
EXCLUDED = (("org.jeecgframework.nacos", "nacos-istio"), ("com.mysql", "mysql-connector-j"))

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>lanes.devtools</groupId><artifactId>nacos-server-fetch</artifactId><version>0</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>{group}</groupId><artifactId>{artifact}</artifactId><version>{version}</version>
      <exclusions>{exclusions}</exclusions>
    </dependency>
  </dependencies>
</project>
"""


class FetchError(RuntimeError):
    """The server could not be fetched; the message says why and what to install."""


def cache_root() -> Path:
    return Path(os.environ.get("LANES_CACHE_DIR", Path.home() / ".cache" / "lanes"))


def server_dir(version: str = VERSION) -> Path:
    return cache_root() / f"nacos-{version}"


def classpath(version: str = VERSION) -> str:
    """The ordered classpath of a fetched server (``ensure_server`` first)."""
    return (server_dir(version) / "classpath.txt").read_text(encoding="utf-8").strip()


def ensure_server(version: str = VERSION) -> Path:
    """The cache directory of the server (``lib/`` and ``classpath.txt``), fetching it on first use."""
    final = server_dir(version)
    if (final / "classpath.txt").is_file():
        return final
    mvn = shutil.which("mvn")
    if mvn is None or shutil.which("java") is None:
        raise FetchError("the Nacos server needs Java 17+ and Maven (apt-get install openjdk-17-jdk-headless maven)")
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"nacos-{version}.", dir=final.parent))
    repo = Path(tempfile.mkdtemp(prefix="lanes-nacos-m2."))
    try:
        exclusions = "".join(
            f"<exclusion><groupId>{g}</groupId><artifactId>{a}</artifactId></exclusion>" for g, a in EXCLUDED
        )
        pom = staging / "pom.xml"
        pom.write_text(
            _POM.format(group=GROUP, artifact=ARTIFACT, version=version, exclusions=exclusions), encoding="utf-8"
        )
        print(f"fetching the {BUILD_NOTE} from Maven Central (about 75 s, 118 MB) ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        command = [
            mvn, "-q", "-B", "-f", str(pom), f"-Dmaven.repo.local={repo}",
            f"{DEPENDENCY_PLUGIN}:copy-dependencies", f"-DoutputDirectory={staging / 'lib'}",
            f"{DEPENDENCY_PLUGIN}:build-classpath", f"-Dmdep.outputFile={staging / 'maven-classpath.txt'}",
        ]  # fmt: skip
        for attempt in range(1, ATTEMPTS + 1):
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode == 0:
                break
            tail = (result.stdout + result.stderr).strip().splitlines()[-15:]
            if attempt == ATTEMPTS:
                raise FetchError(f"mvn failed ({result.returncode}) {ATTEMPTS} times; last:\n" + "\n".join(tail))
            delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS)) - 1]
            print(f"mvn failed ({result.returncode}), attempt {attempt} of {ATTEMPTS}; retrying in {delay} s: "
                  f"{tail[0] if tail else ''}", file=sys.stderr, flush=True)
            time.sleep(delay)
        ordered = (staging / "maven-classpath.txt").read_text(encoding="utf-8").strip().split(os.pathsep)
        jars = [final / "lib" / Path(entry).name for entry in ordered if entry]
        missing = [jar.name for jar in jars if not (staging / "lib" / jar.name).is_file()]
        if missing:
            raise FetchError(f"classpath names jars that were not copied: {missing[:5]}")
        (staging / "classpath.txt").write_text(os.pathsep.join(map(str, jars)) + "\n", encoding="utf-8")
        (staging / "SOURCE.txt").write_text(BUILD_NOTE + "\n", encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
        print(f"fetched {len(jars)} jars in {time.monotonic() - started:.0f}s into {final}", file=sys.stderr)
        return final
    finally:
        shutil.rmtree(repo, ignore_errors=True)
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


if __name__ == "__main__":
    print(ensure_server())
