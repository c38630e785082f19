"""``hq config show`` (each value with its source) and ``hq config set`` (validated writes of the file)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from cli_support import hq_env, run_hq_here


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = hq_env(tmp_path / "home")
    env["HQ_CONFIG"] = str(tmp_path / "conf" / "hq.toml")
    env.update(extra)
    return env


def _show(env: dict[str, str]) -> dict[str, dict[str, object]]:
    proc = run_hq_here("config", "show", "--format", "json", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert doc["config_file"] == env["HQ_CONFIG"]
    settings: dict[str, dict[str, object]] = doc["settings"]
    return settings


def test_show_names_each_source(tmp_path: Path) -> None:
    config = tmp_path / "conf" / "hq.toml"
    config.parent.mkdir()
    config.write_text('source = "synthetic:11"\ndatabase_url = "postgresql://me:s3cret@db/hq"\n')
    env = _env(tmp_path, HQ_IO_WORKERS="3")
    shown = _show(env)
    assert shown["io_workers"] == {"value": 3, "source": "env", "env": "HQ_IO_WORKERS"}
    assert shown["source"]["value"] == "synthetic:11" and shown["source"]["source"] == "file"
    assert shown["database_url"] == {
        "value": "postgresql://me:***@db/hq",
        "source": "file",
        "env": "HQ_DATABASE_URL",
    }
    assert shown["cache_ttl_s"] == {"value": 86400, "source": "default", "env": "HQ_CACHE_TTL_S"}
    assert shown["home"]["value"] == str(tmp_path / "home") and shown["home"]["source"] == "env"
    table = run_hq_here("config", "show", env=env)
    assert table.returncode == 0 and "s3cret" not in table.stdout
    assert "cache_ttl_s" in table.stdout and str(config) in " ".join(table.stdout.split())


def test_set_writes_the_file_keeping_its_other_lines(tmp_path: Path) -> None:
    env = _env(tmp_path)
    config = Path(env["HQ_CONFIG"])
    proc = run_hq_here("config", "set", "io_workers", "6", "--format", "json", env=env)  # creates the file
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout) == {
        "config_file": str(config), "key": "io_workers", "value": 6, "removed": False, "overridden_by": None,
    }  # fmt: skip
    config.write_text("# my settings\n" + config.read_text() + "log_level = 'DEBUG'  # chatty\n")
    for key, value in (("source", "qlib:/data/qlib"), ("cache_lock_wait_s", "60"), ("io_workers", "2")):
        proc = run_hq_here("config", "set", key, value, env=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
    proc = run_hq_here(
        "config", "set", "api_cors_origins", '["https://a.example", "https://b.example"]', env=env
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = config.read_text()
    assert text.startswith("# my settings\nio_workers = 2\nlog_level = 'DEBUG'  # chatty\n")
    assert tomllib.loads(text) == {
        "io_workers": 2, "log_level": "DEBUG", "source": "qlib:/data/qlib", "cache_lock_wait_s": 60.0,
        "api_cors_origins": ["https://a.example", "https://b.example"],
    }  # fmt: skip
    shown = _show(env)
    assert shown["io_workers"]["source"] == "file" and shown["cache_lock_wait_s"]["value"] == 60.0
    # null removes the key: the default applies again
    assert run_hq_here("config", "set", "source", "null", env=env).returncode == 0
    assert "source" not in tomllib.loads(config.read_text())
    assert _show(env)["source"] == {"value": "synthetic", "source": "default", "env": "HQ_SOURCE"}


def test_set_refuses_bad_keys_and_values_and_leaves_the_file(tmp_path: Path) -> None:
    env = _env(tmp_path)
    config = Path(env["HQ_CONFIG"])
    config.parent.mkdir()
    config.write_text("io_workers = 4\n")
    cases = [
        (("io_worker", "3"), "unknown setting 'io_worker'; did you mean io_workers"),
        (("io_workers", "many"), "invalid value 'many' for io_workers"),
        (("io_workers", "0"), "greater than or equal to 1"),
        (("qlib_change_unit", "permille"), "'auto', 'fraction' or 'percent'"),
        (("cache_lock_ttl_ms", "900000"), "must be shorter than cache_lock_wait_s"),
    ]
    for args, said in cases:
        proc = run_hq_here("config", "set", *args, "--format", "json", env=env)
        assert proc.returncode == 2, (args, proc.stderr[-2000:])
        assert said in json.loads(proc.stdout)["error"]["message"], args
        assert config.read_text() == "io_workers = 4\n"


def test_set_mends_a_bad_file_and_notes_an_env_override(tmp_path: Path) -> None:
    env = _env(tmp_path, HQ_LOG_LEVEL="INFO")
    config = Path(env["HQ_CONFIG"])
    config.parent.mkdir()
    config.write_text("io_workers = 0\n")
    broken = run_hq_here("config", "show", env=env)
    assert broken.returncode == 2 and "io_workers" in broken.stderr
    mended = run_hq_here("config", "set", "io_workers", "4", env=env)
    assert mended.returncode == 0, mended.stderr[-2000:]
    assert _show(env)["io_workers"]["value"] == 4
    proc = run_hq_here("config", "set", "log_level", "DEBUG", "--format", "json", env=env)
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["overridden_by"] == "HQ_LOG_LEVEL"
    assert "HQ_LOG_LEVEL is set in the environment" in " ".join(proc.stderr.split())
