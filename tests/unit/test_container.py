"""Static checks of the Dockerfile, .dockerignore and compose.yaml.

No Docker engine runs where these tests run, so the image is never built here. Instead these tests hold
the container files to what `make` does (same lock, same uv, same install command, same environment)
and to what the files must say to work at all (copied paths exist and are not ignored, the service
user is not root, every URL names a service, every database driver is in the lock).
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "compose.yaml"
MAKEFILE = ROOT / "Makefile"


# --------------------------------------------------------------------------------------------------
# Dockerfile parsing


@dataclass
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def _instructions(text: str) -> list[Instruction]:
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    out: list[Instruction] = []
    buffer = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if buffer and line.startswith("#"):  # comment lines inside a continuation are dropped
            continue
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        keyword, _, args = buffer.strip().partition(" ")
        out.append(Instruction(keyword.upper(), args.strip()))
        buffer = ""
    assert not buffer, f"Dockerfile ends inside a continuation: {buffer!r}"
    return out


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    @property
    def runtime(self) -> Stage:
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        matches = [s for s in self.stages if s.name == name]
        assert matches, f"no stage named {name!r}"
        return matches[0]


def _parse_dockerfile() -> Dockerfile:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for ins in _instructions(DOCKERFILE.read_text(encoding="utf-8")):
        if ins.keyword == "FROM":
            parts = [p for p in ins.args.split() if not p.startswith("--")]
            base = re.sub(r"\$\{?(\w+)\}?", lambda m: global_args.get(m.group(1), m.group(0)), parts[0])
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=base, name=name))
        elif not stages:
            if ins.keyword == "ARG":
                key, _, default = ins.args.partition("=")
                global_args[key.strip()] = default.strip().strip('"')
        else:
            stages[-1].instructions.append(ins)
    return Dockerfile(global_args=global_args, stages=stages)


def _flags_and_operands(args: str) -> tuple[list[str], list[str]]:
    """Split COPY/ADD arguments (shell or JSON form) into --flags and operands."""
    tokens = shlex.split(args)
    flags = [t for t in tokens if t.startswith("--")]
    rest = " ".join(t for t in tokens if not t.startswith("--")).strip()
    operands = json.loads(rest) if rest.startswith("[") else rest.split()
    return flags, operands


def _copy_sources(stage: Stage, *, from_context: bool = True) -> list[str]:
    """Sources of the stage's COPY/ADD instructions that come from the build context (or not)."""
    sources: list[str] = []
    for ins in stage.instructions:
        if ins.keyword not in {"COPY", "ADD"}:
            continue
        flags, operands = _flags_and_operands(ins.args)
        assert len(operands) >= 2, f"{ins.keyword} needs a source and a destination: {ins.args!r}"
        is_context = not any(f.startswith("--from=") for f in flags)
        if is_context == from_context:
            sources.extend(operands[:-1])
    return sources


def _env(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in stage.all("ENV"):
        tokens = shlex.split(ins.args)
        if tokens and "=" not in tokens[0]:  # legacy `ENV KEY value`
            env[tokens[0]] = " ".join(tokens[1:])
            continue
        for token in tokens:
            key, sep, value = token.partition("=")
            assert sep, f"ENV token without '=': {token!r}"
            env[key] = value
    return env


def _makefile_var(name: str) -> str:
    match = re.search(
        rf"^(?:export\s+)?{name}\s*:?=\s*(\S.*?)\s*$", MAKEFILE.read_text(encoding="utf-8"), re.M
    )
    assert match, f"{name} is not set in the Makefile"
    return match.group(1)


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return _parse_dockerfile()


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------------
# Dockerfile


def test_dockerfile_is_multi_stage_on_one_base(dockerfile: Dockerfile) -> None:
    assert len(dockerfile.stages) >= 2
    builder = dockerfile.stage("builder")
    # The venv's python is a link to the base image's interpreter: both stages must share it.
    assert builder.base == dockerfile.runtime.base
    assert dockerfile.runtime.base.startswith("python:3.11"), dockerfile.runtime.base


def test_every_copied_path_exists_in_the_repository(dockerfile: Dockerfile) -> None:
    sources = [src for stage in dockerfile.stages for src in _copy_sources(stage)]
    assert sources, "the Dockerfile copies nothing from the build context"
    for src in sources:
        assert not posixpath.isabs(src) and ".." not in Path(src).parts, f"{src} leaves the build context"
        assert (ROOT / src).exists(), f"COPY source {src!r} does not exist in {ROOT}"


def test_image_holds_every_package_and_the_runtime_config(
    dockerfile: Dockerfile, pyproject: dict[str, Any]
) -> None:
    packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    builder_sources = {src.rstrip("/") for src in _copy_sources(dockerfile.stage("builder"))}
    runtime_sources = {src.rstrip("/") for src in _copy_sources(dockerfile.runtime)}
    for package in packages:
        assert package in builder_sources, f"builder does not copy package {package}"
        assert package in runtime_sources, f"runtime does not copy package {package}"
    # hatchling reads the readme named in pyproject.toml while installing the project
    assert pyproject["project"]["readme"] in builder_sources
    for config in ("params.yaml", "dvc.yaml", "pyproject.toml"):
        assert config in runtime_sources, f"runtime does not copy {config}"


def test_installs_from_the_lock_with_the_makefiles_command(dockerfile: Dockerfile) -> None:
    makefile_sync = [
        line for line in MAKEFILE.read_text(encoding="utf-8").splitlines() if "$(UV) sync" in line
    ]
    assert makefile_sync, "the Makefile no longer runs `$(UV) sync`"
    assert all("--frozen" in line for line in makefile_sync), makefile_sync

    builder = dockerfile.stage("builder")
    copied_lock = False
    syncs: list[str] = []
    for ins in builder.instructions:
        if ins.keyword == "COPY" and "uv.lock" in _flags_and_operands(ins.args)[1][:-1]:
            copied_lock = True
        if ins.keyword == "RUN":
            assert "uv pip" not in ins.args and "requirements" not in ins.args, ins.args
            if "uv sync" in ins.args:
                assert copied_lock, "uv sync runs before uv.lock is copied"
                syncs.append(ins.args)
    assert len(syncs) == 2, syncs
    assert all("--frozen" in s and "--no-dev" in s for s in syncs), syncs
    # dependencies first (cached layer), then the project
    assert "--no-install-project" in syncs[0]
    assert "--no-install-project" not in syncs[1]

    env = _env(builder)
    assert env.get("UV_PYTHON_DOWNLOADS") == _makefile_var("UV_PYTHON_DOWNLOADS") == "never"


def test_uv_version_matches_the_makefile(dockerfile: Dockerfile) -> None:
    make_version = _makefile_var("UV_VERSION")
    assert re.fullmatch(r"\d+\.\d+\.\d+", make_version), make_version
    assert dockerfile.global_args.get("UV_VERSION") == make_version
    installs = [i.args for i in dockerfile.stage("builder").all("RUN") if "pip install" in i.args]
    assert any(re.search(r"uv==\$\{?UV_VERSION\}?", args) for args in installs), installs


def test_venv_path_is_the_same_in_both_stages(dockerfile: Dockerfile) -> None:
    venv = _env(dockerfile.stage("builder"))["UV_PROJECT_ENVIRONMENT"]
    copies = [
        _flags_and_operands(i.args)[1] for i in dockerfile.runtime.all("COPY") if "--from=builder" in i.args
    ]
    assert [venv, venv] in copies, f"runtime does not copy {venv} to the same path: {copies}"
    runtime_env = _env(dockerfile.runtime)
    assert runtime_env["PATH"].split(":")[0] == f"{venv}/bin"
    assert any(i.args == "/app" for i in dockerfile.runtime.all("WORKDIR"))


def test_runtime_environment_matches_make(dockerfile: Dockerfile) -> None:
    env = _env(dockerfile.runtime)
    for name in (
        "MLFLOW_DISABLE_TELEMETRY",
        "DO_NOT_TRACK",
        "DVC_NO_ANALYTICS",
        "OMP_NUM_THREADS",
        "OMP_WAIT_POLICY",
    ):
        assert env.get(name) == _makefile_var(name), name
    assert env.get("PYTHONUNBUFFERED") == "1"


def test_runtime_runs_as_a_non_root_user(dockerfile: Dockerfile) -> None:
    users = dockerfile.runtime.all("USER")
    assert users, "the runtime stage never sets USER"
    user = users[-1].args.split(":")[0]
    assert user and user not in {"root", "0"}, user
    if user.isdigit():
        assert any(f"--uid {user}" in i.args for i in dockerfile.runtime.all("RUN")), (
            f"uid {user} is never created"
        )
    # nothing after USER switches back
    keywords = [i.keyword for i in dockerfile.runtime.instructions]
    assert keywords.index("CMD") > len(keywords) - 1 - keywords[::-1].index("USER")


def test_cmd_serves_on_all_interfaces_with_the_console_script(
    dockerfile: Dockerfile, pyproject: dict[str, Any]
) -> None:
    cmds = dockerfile.runtime.all("CMD")
    assert len(cmds) == 1
    cmd = json.loads(cmds[0].args)  # exec form: signals reach the server
    assert cmd[:2] == ["fraudops", "serve"], cmd
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
    port = cmd[cmd.index("--port") + 1]
    assert [i.args.split("/")[0] for i in dockerfile.runtime.all("EXPOSE")] == [port]
    # the console script exists and lives in a package the image installs
    entry_point = pyproject["project"]["scripts"]["fraudops"]
    assert entry_point.split(".")[0] in pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert not dockerfile.runtime.all("ENTRYPOINT")


def test_healthcheck_probes_liveness_without_curl(dockerfile: Dockerfile) -> None:
    checks = dockerfile.runtime.all("HEALTHCHECK")
    assert len(checks) == 1
    probe = checks[0].args
    port = json.loads(dockerfile.runtime.all("CMD")[0].args)[-1]
    assert f"127.0.0.1:{port}/health/live" in probe, probe
    assert "urllib" in probe and "curl" not in probe and "wget" not in probe


# --------------------------------------------------------------------------------------------------
# .dockerignore


def _ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """(negated, regex) per .dockerignore line, in order; Docker's matching: the last match wins."""
    rules: list[tuple[bool, re.Pattern[str]]] = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = posixpath.normpath(line.lstrip("!").strip()).lstrip("/")
        regex, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex, i = regex + pattern[i : end + 1], end + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        rules.append((negated, re.compile(regex)))
    return rules


def _ignored(path: str) -> bool:
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for negated, regex in _ignore_rules():
        if any(regex.fullmatch(p) for p in prefixes):
            ignored = not negated
    return ignored


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".uv/bin/uv",
        "stores/mlflow/mlflow.db",
        "reports/drift.html",
        "demo/data/transactions/2024-01-01.parquet",
        "data/raw/2024-01-01.parquet",
        ".git/HEAD",
        ".env",
        "core/__pycache__/settings.cpython-311.pyc",
        ".mypy_cache/3.11/core.json",
    ],
)
def test_dockerignore_excludes_local_state(path: str) -> None:
    assert _ignored(path), f"{path} would be sent to the Docker build context"


def test_dockerignore_keeps_everything_the_dockerfile_copies(dockerfile: Dockerfile) -> None:
    assert not _ignored("core/settings.py")  # the matcher itself is not ignoring everything
    for stage in dockerfile.stages:
        for src in _copy_sources(stage):
            target = ROOT / src
            files = [target] if target.is_file() else [p for p in target.rglob("*") if p.is_file()]
            for file in files:
                rel = file.relative_to(ROOT).as_posix()
                if "__pycache__" in rel:
                    continue
                assert not _ignored(rel), f"{rel} is copied by the Dockerfile but excluded by .dockerignore"
            assert not _ignored(src.rstrip("/")), src


# --------------------------------------------------------------------------------------------------
# compose.yaml


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(compose, dict) and isinstance(compose.get("services"), dict)
    return compose["services"]


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on", {})
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def _builds_this_repo(service: dict[str, Any]) -> bool:
    build = service.get("build")
    if build is None:
        return False
    context = build if isinstance(build, str) else build.get("context", ".")
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    return (COMPOSE.parent / context).resolve() == ROOT and dockerfile == "Dockerfile"


def _has_healthcheck(service: dict[str, Any], dockerfile: Dockerfile) -> bool:
    own = service.get("healthcheck")
    if own is not None:
        return not own.get("disable", False) and own.get("test") not in (None, ["NONE"])
    # The image's HEALTHCHECK probes the API; it only fits a service that runs the image's CMD.
    return (
        _builds_this_repo(service)
        and "command" not in service
        and bool(dockerfile.runtime.all("HEALTHCHECK"))
    )


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.partition("=")[::2] for item in env)
    return {k: str(v) for k, v in env.items()}


def test_built_services_are_health_gated(services: dict[str, dict[str, Any]], dockerfile: Dockerfile) -> None:
    built = {name: s for name, s in services.items() if "build" in s}
    assert "api" in built
    for name, service in built.items():
        assert _builds_this_repo(service), f"{name} builds something other than ./Dockerfile"
        # servers (they publish a port) are health-checked; one-shot and background services (setup,
        # demo, worker) switch the image's API probe off rather than report a false "unhealthy"
        if service.get("ports"):
            assert _has_healthcheck(service, dockerfile), f"{name} has no healthcheck that fits its command"
        else:
            assert _has_healthcheck(service, dockerfile) or service.get("healthcheck", {}).get("disable"), (
                f"{name} inherits the image's API healthcheck but does not serve the API"
            )
    for name, service in services.items():
        for dep, condition in _depends_on(service).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            assert condition in {"service_healthy", "service_completed_successfully"}, (
                f"{name} starts before {dep} is healthy"
            )
            if condition == "service_healthy":
                assert _has_healthcheck(services[dep], dockerfile), (
                    f"{dep} has no healthcheck for {name} to wait on"
                )
    assert _depends_on(services["api"]).get("mlflow") == "service_healthy"


def test_services_on_the_project_image_can_build_it(services: dict[str, dict[str, Any]]) -> None:
    image = services["api"].get("image")
    assert image, "give the api's image a tag so the servers can share it"
    users = [name for name, s in services.items() if s.get("image") == image]
    assert {"api", "mlflow", "prefect"} <= set(users)
    for name in users:
        # a local tag cannot be pulled: every service naming it must be able to build it
        assert _builds_this_repo(services[name]), f"{name} uses {image} but cannot build it"


def test_urls_name_existing_services(services: dict[str, dict[str, Any]]) -> None:
    hosts_seen = set()
    for name, service in services.items():
        for text in _strings(service.get("environment")) + _strings(service.get("command")):
            for host in re.findall(r"://(?:[^@/\s]*@)?([A-Za-z0-9_.-]+):\d+", text):
                hosts_seen.add(host)
                assert host in services or host in {"127.0.0.1", "localhost"}, (
                    f"{name}: {text} names no service"
                )
    assert {"mlflow", "postgres"} <= hosts_seen


def test_database_drivers_are_in_the_lock(services: dict[str, dict[str, Any]]) -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    locked = {p["name"]: p["version"] for p in lock["package"]}
    # A bare postgresql:// uses SQLAlchemy's default driver: psycopg2 before 2.1, psycopg (3) since.
    sqlalchemy = tuple(int(part) for part in locked["sqlalchemy"].split(".")[:2])
    default = {"psycopg", "psycopg-binary"} if sqlalchemy >= (2, 1) else {"psycopg2", "psycopg2-binary"}
    drivers = {
        "postgresql": default,
        "postgresql+psycopg2": {"psycopg2", "psycopg2-binary"},
        "postgresql+psycopg": {"psycopg", "psycopg-binary"},
        "postgresql+asyncpg": {"asyncpg"},
        "postgresql+pg8000": {"pg8000"},
    }
    # the prediction log connects with psycopg2 itself (core/predlog_pg.py): a libpq URL, no SQLAlchemy
    libpq_variables = {"FRAUDOPS_PREDICTION_LOG_URL"}
    schemes = set()
    for service in services.values():
        env = _environment(service)
        for name in libpq_variables & env.keys():
            schemes.add("postgresql+psycopg2" if env.pop(name).startswith("postgres") else "")
        for text in _strings(env) + _strings(service.get("command")):
            schemes.update(re.findall(r"\b(postgresql(?:\+\w+)?)://", text))
    assert schemes, "no service uses PostgreSQL"
    for scheme in schemes:
        assert scheme in drivers, f"unknown database URL scheme {scheme}"
        assert drivers[scheme] & locked.keys(), (
            f"{scheme}:// needs one of {sorted(drivers[scheme])} in uv.lock"
        )


def _compose_path(source: str) -> Path | None:
    """The host path of a bind mount's source, or None for a named volume."""
    if not source.startswith((".", "/", "~")):
        return None
    assert source.startswith("./"), f"{source}: bind-mount paths inside the repository, relative to it"
    path = (COMPOSE.parent / source).resolve()
    assert path.is_relative_to(ROOT), f"{source} leaves the repository"
    return path


def _bind_mounts(services: dict[str, dict[str, Any]]) -> list[tuple[str, Path, str]]:
    """(service, host path, container path) of every bind mount."""
    mounts = []
    for name, service in services.items():
        for volume in service.get("volumes", []):
            if isinstance(volume, dict):  # long syntax
                source, target = volume.get("source", ""), volume["target"]
                if volume.get("type") != "bind":
                    continue
            else:
                source, _, rest = str(volume).partition(":")
                target = rest.partition(":")[0]
            path = _compose_path(source)
            if path is not None:
                mounts.append((name, path, target))
    return mounts


def test_bind_mounted_host_paths_exist(services: dict[str, dict[str, Any]]) -> None:
    mounts = _bind_mounts(services)
    assert any(name == "postgres" for name, _, _ in mounts), "the postgres init script is not mounted"
    for name, path, target in mounts:
        assert path.exists(), f"{name} mounts {path.relative_to(ROOT)}, which does not exist"
        if path.is_file():  # the container's user (e.g. postgres) is not the file's owner
            assert path.stat().st_mode & stat.S_IROTH, f"{path.relative_to(ROOT)} is not world-readable"
        assert posixpath.isabs(target), f"{name}: {target} is not an absolute container path"


def _url_databases(services: dict[str, dict[str, Any]]) -> set[str]:
    names = set()
    for service in services.values():
        for text in _strings(service.get("environment")) + _strings(service.get("command")):
            names.update(re.findall(r"\bpostgresql(?:\+\w+)?://[^/\s]*@postgres:\d+/(\w+)", text))
    return names


def test_postgres_creates_every_database_the_services_use(services: dict[str, dict[str, Any]]) -> None:
    postgres = services["postgres"]
    env = _environment(postgres)
    initial = env.get("POSTGRES_DB", env.get("POSTGRES_USER", "postgres"))
    scripts = [
        path
        for _, path, target in _bind_mounts({"postgres": postgres})
        if target.startswith("/docker-entrypoint-initdb.d/")
    ]
    created = {initial}
    for script in scripts:
        assert script.suffix in {".sql", ".sh"}, f"{script.name}: the entrypoint runs only .sql and .sh"
        found = re.findall(r"^\s*CREATE\s+DATABASE\s+\"?(\w+)\"?", script.read_text(), re.I | re.M)
        assert initial not in found, f"{script.name} creates {initial}, which the image already created"
        created.update(found)
    used = _url_databases(services)
    assert {"mlflow", "prefect"} <= used, used
    # one database per tool: MLflow and Prefect both keep an alembic_version table (services using the
    # same tool, as every API and the flows use the prediction log, give the same URL)
    urls = {
        text
        for service in services.values()
        for text in _strings(service.get("environment")) + _strings(service.get("command"))
        if "@postgres:" in text
    }
    assert len(used) == len(urls), f"tools share a database: {sorted(urls)}"
    assert used <= created, f"nothing creates {sorted(used - created)} in the postgres service"


def test_mlflow_accepts_the_host_the_api_calls_it_by(services: dict[str, dict[str, Any]]) -> None:
    uri = _environment(services["api"])["FRAUDOPS_MLFLOW_TRACKING_URI"]
    host_port = re.fullmatch(r"http://([^/]+)/?", uri)
    assert host_port, uri
    command = services["mlflow"]["command"]
    command = shlex.split(command) if isinstance(command, str) else [str(c) for c in command]
    assert command[:2] == ["mlflow", "server"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert host_port.group(1) == f"mlflow:{command[command.index('--port') + 1]}"
    if "--allowed-hosts" in command:  # MLflow 3 rejects unknown Host headers
        assert host_port.group(1) in command[command.index("--allowed-hosts") + 1].split(",")


def test_api_service_is_configured_for_production(
    services: dict[str, dict[str, Any]], dockerfile: Dockerfile
) -> None:
    api = services["api"]
    env = _environment(api)
    assert env["FRAUDOPS_ENVIRONMENT"] == "production"
    # from the environment or compose's .env, else empty: the workspace entry point then drops it and
    # the key setup generated into the workspace's .env is used; never a placeholder default, and no
    # `:?` (it would make every compose command, even `logs` and `down`, fail without the variable)
    for key in ("FRAUDOPS_ADMIN_API_KEY", "FRAUDOPS_FEEDBACK_API_KEY"):
        assert env[key] == f"${{{key}:-}}"
    assert ":?" not in COMPOSE.read_text(encoding="utf-8")
    # the image's CMD, the one the Dockerfile test checks
    assert api["command"] == json.loads(dockerfile.runtime.all("CMD")[-1].args)
    assert [str(p) for p in api["ports"]] == ["127.0.0.1:8000:8000"]
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"
