"""What a reload applies live, and what it leaves for a restart."""

from __future__ import annotations

from pathlib import Path

from syncplayd.config import ConfigError, Settings, load_settings
from syncplayd.server.process.reload import plan, reload


def _settings(tmp_path: Path, **env: str) -> Settings:
    return load_settings(None, {"SYNCPLAY_STATE_DIR": str(tmp_path)} | env)


def test_plan_splits_live_changes_from_restart_ones(tmp_path: Path) -> None:
    old = _settings(tmp_path)
    new = _settings(
        tmp_path,
        SYNCPLAY_LOG_LEVEL="debug",
        SYNCPLAY_SYNC_THRESHOLD_SECONDS="3",
        SYNCPLAY_CHAT_RATE_LIMIT_MESSAGES_PER_MINUTE="5",
        SYNCPLAY_LISTEN="127.0.0.1:9999",
        SYNCPLAY_DATABASE_POOL_SIZE="2",
    )
    result = plan(old, new)
    assert result.applied == [
        "logging.level",
        "syncplay.chat.rate_limit_messages_per_minute",
        "syncplay.sync.threshold_seconds",
    ]
    assert result.needs_restart == ["database.pool_size", "server.listen"]


def test_a_bad_configuration_changes_nothing(tmp_path: Path) -> None:
    current = _settings(tmp_path)
    applied: list[Settings] = []

    def broken() -> Settings:
        raise ConfigError("bad value", ("syncplay", "sync", "threshold_seconds"))

    in_force, result = reload(current, broken, applied.append)
    assert in_force is current and applied == []
    assert result.error is not None and "threshold_seconds" in result.error


def test_nothing_changed_applies_nothing(tmp_path: Path) -> None:
    current = _settings(tmp_path)
    applied: list[Settings] = []
    in_force, result = reload(current, lambda: _settings(tmp_path), applied.append)
    assert in_force is current and applied == [] and result.applied == []
