"""The systemd files in ``systemd/``: systemd's own tools accept them, and they say what we mean.

The template ``syncplayd@.service`` (one instance per node) must be ``syncplayd.service`` but
for the per-node lines, so it is compared with it setting by setting; ``verify`` checks it as
an instance (a copy named ``syncplayd@a.service``), the form in which systemd loads it.

``systemd-analyze verify`` needs ExecStart='s binary to exist, so it checks a copy whose
ExecStart points at this virtual environment's ``syncplayd``. It exits 0 even for unknown
keys and unparsable values (it only warns), so the tests also demand that it prints nothing
about our unit. It does not resolve ``User=``, so the user need not exist; the sysusers file
is checked separately by running ``systemd-sysusers`` on a throwaway root.

The tools come with Debian's ``systemd`` package. Without them the tests skip, except in CI
(``CI=true``), where they fail.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import NoReturn

import pytest

from syncplayd.config import ConfigError, Settings, load_settings, unknown_env_names

SYSTEMD_DIR = Path(__file__).resolve().parent.parent / "systemd"
UNIT = SYSTEMD_DIR / "syncplayd.service"
TEMPLATE = SYSTEMD_DIR / "syncplayd@.service"
README = SYSTEMD_DIR / "README.md"
SYSUSERS = SYSTEMD_DIR / "syncplayd.sysusers.conf"
TMPFILES = SYSTEMD_DIR / "syncplayd.tmpfiles.conf"

Unit = dict[str, dict[str, list[str]]]


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (install Debian's systemd package)", pytrace=False)
    pytest.skip(reason)


def tool(name: str) -> str:
    """The path of a systemd tool; skips (fails in CI) when it is missing."""
    path = shutil.which(name) or shutil.which(name, path="/usr/bin:/bin")
    if path is None:
        _unavailable(f"{name} is not installed")
    return path


def parse_unit(text: str) -> Unit:
    """Section -> key -> every value assigned, in order, as systemd reads a unit file.

    Unlike configparser, a key may repeat (``SystemCallFilter=`` twice) and an empty
    assignment (``CapabilityBoundingSet=``) is kept as ``""``. Comments are skipped;
    ``commented`` below reads the commented-out examples.
    """
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], {})
            continue
        assert section is not None, f"assignment outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not an assignment: {line!r}"
        section.setdefault(key.strip(), []).append(value.strip())
    return unit


def commented(text: str, key: str) -> list[str]:
    """The values of commented-out ``#Key=value`` example lines."""
    return re.findall(rf"^#{re.escape(key)}=(.*)$", text, flags=re.MULTILINE)


def environment(values: list[str]) -> dict[str, str]:
    """``Environment=`` values (one ``NAME=value`` each, unquoted) as a mapping."""
    return dict(value.split("=", 1) for value in values)


@pytest.fixture(scope="module")
def unit_text() -> str:
    return UNIT.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def unit(unit_text: str) -> Unit:
    return parse_unit(unit_text)


def local_copy(folder: Path, unit_text: str, name: str) -> Path:
    """A copy of a unit whose ExecStart runs this virtual environment's syncplayd."""
    binary = Path(sys.executable).with_name("syncplayd")  # not resolved: the venv's bin/
    if not binary.is_file():
        pytest.fail(f"{binary} is missing: install the package into the environment")
    text, count = re.subn(
        r"^ExecStart=/usr/bin/syncplayd ", f"ExecStart={binary} ", unit_text, flags=re.MULTILINE
    )
    assert count == 1
    copy = folder / name  # verify derives the unit name from the file name
    copy.write_text(text, encoding="utf-8")
    return copy


@pytest.fixture
def local_unit(tmp_path: Path, unit_text: str) -> Path:
    return local_copy(tmp_path, unit_text, "syncplayd.service")


@pytest.fixture(scope="module")
def template_text() -> str:
    return TEMPLATE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def template(template_text: str) -> Unit:
    return parse_unit(template_text)


@pytest.fixture
def local_instance(tmp_path: Path, template_text: str) -> Path:
    """The template as instance ``a``: systemd reads the file, with %i standing for ``a``."""
    return local_copy(tmp_path, template_text, "syncplayd@a.service")


def verify(unit_file: Path) -> None:
    """``systemd-analyze verify``: it must exit 0 and say nothing about our unit."""
    result = subprocess.run(
        [tool("systemd-analyze"), "verify", "--man=no", str(unit_file)],
        capture_output=True,
        text=True,
        cwd=unit_file.parent,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # Unknown keys and bad values are only warnings: none may concern our unit.
    ours = [line for line in output.splitlines() if "syncplayd" in line]
    assert ours == []


def test_systemd_analyze_verify_accepts_the_unit(local_unit: Path) -> None:
    verify(local_unit)


def test_systemd_analyze_verify_accepts_an_instance_of_the_template(local_instance: Path) -> None:
    verify(local_instance)


def test_systemd_analyze_verify_catches_a_broken_unit(tmp_path: Path, local_unit: Path) -> None:
    # The check above is not vacuous: a typo in a key is reported (though with status 0).
    broken = tmp_path / "broken" / "syncplayd.service"
    broken.parent.mkdir()
    broken.write_text(
        local_unit.read_text().replace("WatchdogSec=30", "WatchdogSecs=30"), encoding="utf-8"
    )
    result = subprocess.run(
        [tool("systemd-analyze"), "verify", "--man=no", str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Unknown key" in result.stdout + result.stderr
    assert "WatchdogSecs" in result.stdout + result.stderr


def test_systemd_analyze_verify_reads_an_instance_of_the_template(
    tmp_path: Path, local_instance: Path
) -> None:
    # The check above is not vacuous for the instance either: a typo in a per-node line is
    # reported.
    broken = tmp_path / "broken" / local_instance.name
    broken.parent.mkdir()
    broken.write_text(
        local_instance.read_text().replace("EnvironmentFile=", "EnvironmentFiles="),
        encoding="utf-8",
    )
    result = subprocess.run(
        [tool("systemd-analyze"), "verify", "--man=no", str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Unknown key 'EnvironmentFiles'" in result.stdout + result.stderr


def security_exposure_is_low(unit_file: Path) -> None:
    # systemd's own rating, 0 (locked down) to 10 (unprotected); --threshold is in tenths.
    # The unit rates 1.4 on systemd 252 (an instance of the template 1.2); what remains is
    # network access, by design.
    result = subprocess.run(
        [
            tool("systemd-analyze"),
            "security",
            "--offline=true",
            "--threshold=20",
            "--no-pager",
            str(unit_file),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_security_exposure_is_low(local_unit: Path) -> None:
    security_exposure_is_low(local_unit)


def test_security_exposure_of_a_node_is_low(local_instance: Path) -> None:
    security_exposure_is_low(local_instance)


def test_unit_type_and_lifecycle(unit: Unit) -> None:
    service = unit["Service"]
    assert service["Type"] == ["notify"]
    assert service["NotifyAccess"] == ["main"]
    assert service["ExecStart"] == ["/usr/bin/syncplayd --config /etc/syncplayd/config.yaml"]
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert service["Restart"] == ["on-failure"]
    # 78 is EX_CONFIG, what the daemon exits with on a configuration error.
    assert service["RestartPreventExitStatus"] == ["78"]
    assert service["WatchdogSec"] == ["30"]
    # Shutdown takes up to about 15 s (three 5 s steps): SIGKILL must come later.
    assert int(service["TimeoutStopSec"][0]) > 15
    assert unit["Unit"]["After"] == ["network-online.target"]
    assert unit["Unit"]["Wants"] == ["network-online.target"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_unit_user_and_directories(unit: Unit) -> None:
    service = unit["Service"]
    assert service["User"] == service["Group"] == ["syncplayd"]
    assert "DynamicUser" not in service
    assert service["UMask"] == ["0027"]
    assert service["StateDirectory"] == ["syncplayd"]
    assert service["StateDirectoryMode"] == ["0750"]
    assert service["RuntimeDirectory"] == ["syncplayd"]
    assert service["RuntimeDirectoryMode"] == ["0750"]
    assert service["ConfigurationDirectory"] == ["syncplayd"]
    assert service["ConfigurationDirectoryMode"] == ["0750"]
    # StateDirectory= makes the folder writable under ProtectSystem=strict by itself.
    assert "ReadWritePaths" not in service


HARDENING = {
    "ProtectSystem": ["strict"],
    "ProtectHome": ["yes"],
    "PrivateTmp": ["yes"],
    "PrivateDevices": ["yes"],
    "NoNewPrivileges": ["yes"],
    "ProtectKernelTunables": ["yes"],
    "ProtectKernelModules": ["yes"],
    "ProtectKernelLogs": ["yes"],
    "ProtectControlGroups": ["yes"],
    "ProtectClock": ["yes"],
    "ProtectHostname": ["yes"],
    "RestrictAddressFamilies": ["AF_UNIX AF_INET AF_INET6"],
    "RestrictNamespaces": ["yes"],
    "RestrictRealtime": ["yes"],
    "RestrictSUIDSGID": ["yes"],
    "LockPersonality": ["yes"],
    "MemoryDenyWriteExecute": ["yes"],
    "SystemCallArchitectures": ["native"],
    "SystemCallFilter": ["@system-service", "~@privileged @resources"],
    "CapabilityBoundingSet": [""],
    "AmbientCapabilities": [""],
}


@pytest.mark.parametrize(("key", "expected"), HARDENING.items())
def test_unit_hardening(unit: Unit, key: str, expected: list[str]) -> None:
    assert unit["Service"].get(key) == expected


@pytest.mark.parametrize(("key", "expected"), HARDENING.items())
def test_template_hardening(template: Unit, key: str, expected: list[str]) -> None:
    assert template["Service"].get(key) == expected


@pytest.mark.parametrize("unit_file", [UNIT, TEMPLATE], ids=lambda path: path.name)
def test_unit_hardening_is_commented_line_by_line(unit_file: Path) -> None:
    lines = unit_file.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if "Hardening" in line)
    for i, line in enumerate(lines[start:], start):
        if line.startswith("[Install]"):
            break
        if line and not line.startswith("#"):
            assert lines[i - 1].startswith("#"), f"no comment above {line!r}"


def test_unit_environment_names_are_settings(unit: Unit, unit_text: str) -> None:
    # Including the commented LoadCredential example: a typo there would be ignored by the
    # daemon (with a warning) and leave the secret unset.
    env = environment(unit["Service"]["Environment"] + commented(unit_text, "Environment"))
    assert env["SYNCPLAY_LOG_FORMAT"] == "json"
    assert env["SYNCPLAY_AUTH_JWT_SECRET_FILE"] == "%d/jwt_secret"
    assert unknown_env_names(env) == []


def test_unit_environment_loads(unit: Unit, unit_text: str) -> None:
    # What the daemon sees under the unit with the credential example enabled: systemd sets
    # STATE_DIRECTORY from StateDirectory= and expands %d to the credentials folder.
    credentials = "/run/credentials/syncplayd.service"
    assert commented(unit_text, "LoadCredential") == ["jwt_secret:/etc/syncplayd/jwt_secret"]
    env = environment(unit["Service"]["Environment"] + commented(unit_text, "Environment"))
    env = {name: value.replace("%d", credentials) for name, value in env.items()}
    env["STATE_DIRECTORY"] = "/var/lib/syncplayd"
    secret = "s" * 40
    files = {f"{credentials}/jwt_secret": secret + "\n"}
    settings = load_settings(None, env, read_file=files.__getitem__)
    assert settings.logging.format == "json"
    assert settings.server.state_dir == Path("/var/lib/syncplayd")
    assert settings.auth.jwt_secret is not None
    assert settings.auth.jwt_secret.reveal() == secret


# -- the template: one instance per node ----------------------------------------------------

# What an instance of the template may set differently from syncplayd.service.
PER_NODE = {"StateDirectory", "RuntimeDirectory", "Environment", "EnvironmentFile"}


def test_the_template_is_the_unit_but_for_the_per_node_lines(
    unit: Unit, template: Unit, unit_text: str, template_text: str
) -> None:
    """Every other setting, hardening included, as in syncplayd.service: a change to one unit
    that is not made to the other fails here."""
    assert template.keys() == unit.keys()
    assert template["Install"] == unit["Install"]
    description = unit["Unit"]["Description"][0] + ", node %i"
    assert template["Unit"] == unit["Unit"] | {"Description": [description]}
    service, node = unit["Service"], template["Service"]
    assert {k: v for k, v in node.items() if k not in PER_NODE} == {
        k: v for k, v in service.items() if k not in PER_NODE
    }
    # The unit's environment, and its commented credential example, are the template's too.
    assert environment(service["Environment"]).items() <= environment(node["Environment"]).items()
    for key in ("LoadCredential", "Environment"):
        assert commented(template_text, key) == commented(unit_text, key)


def test_the_template_gives_each_node_its_own_id_folders_and_file(template: Unit) -> None:
    service = template["Service"]
    assert service["StateDirectory"] == ["syncplayd/%i"]
    assert service["RuntimeDirectory"] == ["syncplayd/%i"]
    # No "-" in front: a node without its file does not start (rather than take port 8750).
    assert service["EnvironmentFile"] == ["/etc/syncplayd/node-%i.env"]
    env = environment(service["Environment"])
    assert env["SYNCPLAY_CLUSTER_ENABLED"] == "true"
    assert env["SYNCPLAY_CLUSTER_NODE_ID"] == "%i"
    # The daemon's folders are the ones systemd makes writable for the instance.
    assert env["SYNCPLAY_STATE_DIR"] == "/var/lib/" + service["StateDirectory"][0]
    assert Path(env["SYNCPLAY_ADMIN_SOCKET"]).parent == Path("/run", service["RuntimeDirectory"][0])
    assert unknown_env_names(env) == []


def readme_block(marker: str, language: str) -> str:
    """The first ``language`` code block after the README comment that contains ``marker``."""
    text = README.read_text(encoding="utf-8")
    at = text.index(marker)
    match = re.compile(rf"```{language}\n(.*?)```", re.S).search(text, at)
    assert match is not None, f"no {language} block after {marker!r} in {README}"
    return textwrap.dedent(match[1])


def environment_file(text: str) -> dict[str, str]:
    """``EnvironmentFile=`` content, as systemd reads the simple form: NAME=value lines."""
    lines = [line.strip() for line in text.splitlines()]
    return environment([line for line in lines if line and not line.startswith(("#", ";"))])


def node_settings(template: Unit, template_text: str, node: str, node_file: str) -> Settings:
    """What node ``node`` runs with: the README's config.yaml, the unit's environment (%i and
    %d expanded, as systemd does; the credential example enabled), then the node's file."""
    credentials = f"/run/credentials/syncplayd@{node}.service"
    lines = template["Service"]["Environment"] + commented(template_text, "Environment")
    env = {
        name: value.replace("%i", node).replace("%d", credentials)
        for name, value in environment(lines).items()
    }
    env |= environment_file(node_file)  # EnvironmentFile= overrides Environment=
    env["STATE_DIRECTORY"] = "/var/lib/syncplayd/" + node
    config = readme_block("3. **Write the configuration**", "yaml")
    files = {f"{credentials}/jwt_secret": "s" * 40}
    return load_settings(config, env, read_file=files.__getitem__)


def test_nodes_under_the_template_keep_apart(template: Unit, template_text: str) -> None:
    """The README's single-daemon config.yaml serves every node: each gets its own port, id,
    state folder and admin socket, and runs in multi-node mode on the shared database."""
    node_file = readme_block("tests/test_systemd_unit.py loads this file", "sh")
    one = node_settings(template, template_text, "1", node_file)
    # The README's loop writes the others' files.
    two = node_settings(template, template_text, "2", "SYNCPLAY_LISTEN=127.0.0.1:8752\n")
    assert (one.server.listen, two.server.listen) == ("127.0.0.1:8751", "127.0.0.1:8752")
    assert (one.cluster.node_id, two.cluster.node_id) == ("1", "2")
    assert one.cluster.enabled and two.cluster.enabled
    assert one.cluster.url is None  # derived from server.listen: right on one machine
    assert one.server.state_dir == Path("/var/lib/syncplayd/1")
    assert two.server.state_dir == Path("/var/lib/syncplayd/2")
    assert one.admin_socket_path() == Path("/run/syncplayd/1/admin.sock")
    assert two.admin_socket_path() == Path("/run/syncplayd/2/admin.sock")
    assert one.database.url == two.database.url
    assert one.database.url.startswith("postgresql:")
    assert one.auth.jwt_secret is not None  # from the credential: none generated per node
    # The file's commented example names a setting too.
    examples = re.findall(r"^#(SYNCPLAY_\w+)=", node_file, flags=re.MULTILINE)
    assert examples and unknown_env_names(dict.fromkeys(examples, "")) == []


def test_a_node_on_sqlite_is_a_configuration_error(template: Unit, template_text: str) -> None:
    """Exit status 78, which RestartPreventExitStatus= keeps from restarting in a loop."""
    node_file = "SYNCPLAY_LISTEN=127.0.0.1:8751\nSYNCPLAY_DATABASE_URL=sqlite:////tmp/x.sqlite3\n"
    with pytest.raises(ConfigError) as error:
        node_settings(template, template_text, "1", node_file)
    assert error.value.path == ("cluster", "enabled")


def test_sysusers_creates_the_units_user(tmp_path: Path, unit: Unit) -> None:
    (tmp_path / "etc").mkdir()
    subprocess.run(
        [tool("systemd-sysusers"), f"--root={tmp_path}", str(SYSUSERS)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    passwd = {
        line.split(":")[0]: line.split(":")
        for line in (tmp_path / "etc" / "passwd").read_text().splitlines()
    }
    groups = {
        line.split(":")[0]: line.split(":")
        for line in (tmp_path / "etc" / "group").read_text().splitlines()
    }
    user = unit["Service"]["User"][0]
    group = unit["Service"]["Group"][0]
    assert user in passwd
    assert group in groups
    _, _, uid, gid, _, home, shell = passwd[user]
    assert int(uid) < 1000  # a system user
    assert gid == groups[group][2]
    assert home == "/var/lib/syncplayd"
    assert shell.endswith("/nologin")


@pytest.mark.skipif(os.geteuid() != 0, reason="systemd-tmpfiles needs root to chown")
def test_tmpfiles_creates_the_config_folder(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    subprocess.run(
        [tool("systemd-sysusers"), f"--root={tmp_path}", str(SYSUSERS)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    result = subprocess.run(
        [tool("systemd-tmpfiles"), f"--root={tmp_path}", "--create", str(TMPFILES)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    gid = next(
        int(line.split(":")[2])
        for line in (tmp_path / "etc" / "group").read_text().splitlines()
        if line.startswith("syncplayd:")
    )
    info = (tmp_path / "etc" / "syncplayd").stat()
    assert stat.S_ISDIR(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o750
    assert (info.st_uid, info.st_gid) == (0, gid)
