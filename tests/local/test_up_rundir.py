from pathlib import Path

import pytest

from flotilla.local.rundir import default_run_dir, ensure_sqlite_folder, sqlite_file


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///./.flotilla/flotilla.db", Path(".flotilla/flotilla.db")),
        ("sqlite+aiosqlite:////var/lib/f.db", Path("/var/lib/f.db")),
        ("sqlite:///f.db?timeout=5", Path("f.db")),
        ("sqlite:///:memory:", None),
        ("postgresql+asyncpg://postgres@127.0.0.1/test", None),
    ],
)
def test_sqlite_file(url, path):
    assert sqlite_file(url) == path


def test_the_sqlite_folder_is_created(tmp_path):
    ensure_sqlite_folder(f"sqlite:///{tmp_path}/a/b/flotilla.db")
    assert (tmp_path / "a" / "b").is_dir()


def test_run_dirs_do_not_collide(tmp_path):
    first = default_run_dir(tmp_path)
    first.mkdir()
    second = default_run_dir(tmp_path)
    assert second != first and second.name.startswith(first.name)
