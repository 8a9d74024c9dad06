"""A worker SIGKILLed while the model generates: the job runs again, one answer is recorded, no files orphaned.

The worker is a real ``holocron worker --queues llm`` process; the model is the scripted chat server, told to
take its time with the first request so that the kill lands mid-generation. On both engines.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from chat_servers import ChatScript, scripted_chat_server
from holocron.chat.ollama import OllamaChatProvider
from holocron.jobs.models import JobStatus
from test_llm_runtime import CLASSIFIED, FAST, drain, make_holo, pages_folder, source_id_of
from test_worker_processes import wait_for

pytestmark = pytest.mark.model

LEASE_SECONDS = 2


def start_llm_worker(url: str, home: Path, chat_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "HOLOCRON_CHAT_PROVIDER": "ollama",
        "HOLOCRON_CHAT_MODEL": "fake-chat",
        "HOLOCRON_CHAT_BASE_URL": chat_url,
        "HOLOCRON_LOG_LEVEL": "INFO",
    }
    command = [
        str(Path(sys.executable).with_name("holocron")),
        "--database-url",
        url,
        "--home",
        str(home),
        "worker",
        "--loop",
    ]
    command += ["--queues", "llm", "--worker-id", "doomed", "--lease-seconds", str(LEASE_SECONDS)]
    command += ["--poll-seconds", "0.2"]
    return subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def test_a_worker_killed_mid_generation_leaves_one_answer_and_no_orphans(db_url: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    with scripted_chat_server(ChatScript(model="fake-chat", answer=CLASSIFIED)) as (chat_url, script):
        provider = OllamaChatProvider("fake-chat", chat_url, retry=FAST)
        with make_holo(db_url, home, provider) as holo:
            holo.ingest([pages_folder(tmp_path)])
            holo.index()
            [enqueued] = holo.llm_enqueue("page_classification", source_ids=[source_id_of(holo, "penny.html")])
            job_id = enqueued.job.job_id

            script.set("slow:60")  # the first answer takes a minute: the worker is killed before it comes
            worker = start_llm_worker(db_url, home, chat_url, tmp_path / "worker.log")
            try:
                wait_for("the worker's request to the model", lambda: script.chat_requests, timeout=120)
                running = holo.llm_jobs.get(job_id)
                assert running is not None and running.status is JobStatus.RUNNING and running.locked_by == "doomed"
                worker.send_signal(signal.SIGKILL)
                assert worker.wait(timeout=30) == -signal.SIGKILL
            finally:
                if worker.poll() is None:
                    worker.kill()
            # What a worker killed between writing its files and its commit would leave: a folder no row names.
            [killed_run] = holo.llm_runs().items
            orphan = holo.settings.resolved_lake_dir / "llm_runs" / killed_run["run_id"] / "artifacts"
            orphan.mkdir(parents=True)
            (orphan / "prompt_text.txt").write_text("half-written")
            stray = holo.settings.resolved_lake_dir / "llm_runs" / str(uuid.uuid4())
            stray.mkdir()

            time.sleep(LEASE_SECONDS + 0.5)  # the dead worker's lease runs out
            assert holo.llm_jobs.reclaim_expired().retried == [job_id]
            report = drain(holo)
            assert report.succeeded == 1

            job = holo.llm_jobs.get(job_id)
            assert job is not None and job.status is JobStatus.SUCCEEDED and job.attempt_count == 2
            runs = {r["run_id"]: r for r in holo.llm_runs().items}
            assert runs[killed_run["run_id"]]["status"] == "FAILED"
            assert "lost its lease" in runs[killed_run["run_id"]]["error"]
            [answered] = [r for r in runs.values() if r["status"] == "SUCCEEDED"]
            t = holo.db.t
            with holo.db.read() as tx:
                parsed = tx.execute(
                    select(func.count())
                    .select_from(t.llm_artifact)
                    .where(t.llm_artifact.c.artifact_type == "parsed_output")
                ).scalar_one()
                killed_artifacts = tx.execute(
                    select(func.count())
                    .select_from(t.llm_artifact)
                    .where(t.llm_artifact.c.run_id == killed_run["run_id"])
                ).scalar_one()
            assert parsed == 1 and killed_artifacts == 0 and len(holo.source_pages()) == 1
            folders = {p.name for p in (holo.settings.resolved_lake_dir / "llm_runs").iterdir()}
            assert folders == {answered["run_id"]}
