"""The wheel carries what the daemon needs at run time: migrations and the contract."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_migrations_openapi_and_entry_points(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("syncplayd-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    for dialect in ("sqlite", "postgres"):
        for migration in (ROOT / "migrations" / dialect).glob("*.sql"):
            assert f"syncplayd/_data/migrations/{dialect}/{migration.name}" in names
    assert "syncplayd/_data/openapi/syncplay.yaml" in names
    assert "syncplayd/py.typed" in names
    assert "syncplayd = syncplayd.cli.daemon:main" in scripts
    assert "syncplayctl = syncplayd.cli.ctl:main" in scripts


def test_packaged_and_repository_openapi_are_the_same_file() -> None:
    from syncplayd.openapi import spec_yaml_bytes

    assert spec_yaml_bytes() == (ROOT / "api" / "openapi" / "syncplay.yaml").read_bytes()
