"""Migrations under a lock, and a schema newer than the code: on both engines, with real processes.

Ten processes started together against a database one migration behind all succeed; exactly one of them
migrates, the others wait for its lock and find nothing left to do; the schema ends at head. A database
stamped with a revision these migrations do not know (newer code upgraded it) is refused with a message that
names both revisions, by the library and by the command line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from holocron.config import Settings
from holocron.service import Holocron
from holocron.store.database import Database
from holocron.store.migrate import SchemaTooNewError, current_revision, head_revision, upgrade

PROCESSES = 10
FUTURE = "9999_from_a_newer_version"

# One process that starts with the others: it waits for the go file, then opens the store as every command does.
STARTER = """
import json, sys, time
from pathlib import Path
from holocron.store.database import Database

url, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
db = Database(url)
ready.touch()
deadline = time.monotonic() + 120
while not go.exists():
    if time.monotonic() > deadline:
        sys.exit("no go signal")
    time.sleep(0.005)
migrated = db.upgrade()
db.dispose()
print(json.dumps({"migrated": migrated}))
"""


def alembic_rows(db: Database) -> list[str]:
    with db.read() as tx:
        return list(tx.execute(text("SELECT version_num FROM alembic_version")).scalars())


def test_processes_starting_together_migrate_once(db_url: str, tmp_path: Path) -> None:
    setup = Database(db_url)
    try:
        assert upgrade(setup, "0002")
        assert current_revision(setup) == "0002" != head_revision(setup)
    finally:
        setup.dispose()
    script = tmp_path / "start.py"
    script.write_text(STARTER)
    go = tmp_path / "go"
    procs = []
    for i in range(PROCESSES):
        ready = tmp_path / f"ready-{i}"
        command = [sys.executable, str(script), db_url, str(ready), str(go)]
        procs.append((ready, subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    try:
        deadline = time.monotonic() + 120
        while not all(ready.exists() for ready, _ in procs):  # every one imported and connected: start together
            assert time.monotonic() < deadline, "the processes did not start"
            assert all(proc.poll() is None for _, proc in procs), "a process exited before the start"
            time.sleep(0.02)
        go.touch()
        results = [proc.communicate(timeout=120) for _, proc in procs]
    finally:
        for _, proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    codes = [proc.returncode for _, proc in procs]
    errors = [err for _, err in results if err.strip()]
    assert codes == [0] * PROCESSES and errors == [], "\n".join(errors)
    migrated = [json.loads(out)["migrated"] for out, _ in results]
    assert migrated.count(True) == 1, migrated  # one migrated; nine waited and found it done
    db = Database(db_url)
    try:
        assert alembic_rows(db) == [head_revision(db)]
    finally:
        db.dispose()


def stamp_future(db: Database) -> None:
    with db.write() as tx:
        tx.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": FUTURE})


def test_a_schema_newer_than_the_code_is_refused_naming_both_revisions(db: Database, tmp_path: Path) -> None:
    head = head_revision(db)
    stamp_future(db)
    with pytest.raises(SchemaTooNewError) as caught:
        db.upgrade()
    assert caught.value.current == FUTURE and caught.value.newest_known == head
    assert FUTURE in str(caught.value) and f"newest migration is {head}" in str(caught.value)
    with pytest.raises(SchemaTooNewError):
        Holocron(Settings(database_url=db.url.render_as_string(hide_password=False), home=tmp_path / "home"))
    assert alembic_rows(db) == [FUTURE]  # nothing was touched


@pytest.mark.parametrize("args", [["jobs", "list"], ["db", "upgrade"]], ids=" ".join)
def test_the_command_line_prints_the_refusal_as_one_error_line(db: Database, tmp_path: Path, args: list[str]) -> None:
    stamp_future(db)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HOLOCRON_")},
        "HOLOCRON_CONFIG": str(tmp_path / "absent.toml"),
    }
    url = db.url.render_as_string(hide_password=False)
    command = [sys.executable, "-c", "from holocron.cli.app import main; main()"]
    done = subprocess.run(
        [*command, "--database-url", url, "--home", str(tmp_path / "home"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: the database schema is at revision " + FUTURE)
    assert f"newest migration is {head_revision(db)}" in lines[0]
    assert "Traceback" not in done.stderr and "SchemaTooNewError" not in done.stderr
