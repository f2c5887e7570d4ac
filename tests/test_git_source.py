"""Git repositories as sources, over real git on a local repository: the first run reads the
folder at the ref, later runs read only what changed between commits (edits, deletions,
renames), `source_modified_at` is the commit time, citations name the commit; the CLI, the
jobs API's allow-list and the manifest take git URLs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import finished_job, make_settings
from fastapi.testclient import TestClient

from api.main import create_app
from ingestion.git import GitRepo
from ingestion.runner import IngestRequest, source_location
from rag.ops.reports import freshness_report
from rag.types import utc_now
from service.host import IngestionHost
from service.ingest import load_manifest, make_ingestor

pytestmark = pytest.mark.integration

RAGOPS = str(Path(sys.executable).with_name("ragops"))
FIRST = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SECOND = datetime(2026, 5, 11, 14, 30, tzinfo=UTC)


class Repo:
    """A working repository whose commits carry fixed dates."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir()
        self.git("init", "--quiet", "--initial-branch=main")

    def git(self, *args: str, when: datetime = FIRST) -> str:
        stamp = when.isoformat()
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "Docs",
            "GIT_AUTHOR_EMAIL": "docs@example.com",
            "GIT_COMMITTER_NAME": "Docs",
            "GIT_COMMITTER_EMAIL": "docs@example.com",
            "GIT_AUTHOR_DATE": stamp,
            "GIT_COMMITTER_DATE": stamp,
        }
        done = subprocess.run(
            ["git", *args], cwd=self.path, env=env, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    def write(self, name: str, text: str) -> None:
        file = self.path / name
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text)

    def commit(self, message: str, when: datetime) -> str:
        self.git("add", "-A", when=when)
        self.git("commit", "--quiet", "-m", message, when=when)
        return self.git("rev-parse", "HEAD")

    @property
    def url(self) -> str:
        return f"git+{self.path.as_uri()}"


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    repo = Repo(tmp_path / "handbook")
    repo.write("docs/leave.md", "# Leave\n\nParents get 16 weeks of paid parental leave.\n")
    repo.write("docs/travel.md", "# Travel\n\nTrain travel is booked in second class.\n")
    repo.write("docs/laptops.md", "# Laptops\n\nLaptops are replaced every three years.\n")
    repo.write("docs/.github/template.md", "# Template\n\nNot a document.\n")
    repo.write("README.md", "# Handbook repository\n\nOutside the docs folder.\n")
    repo.commit("first", FIRST)
    return repo


def statuses(job) -> dict[str, tuple[str, str | None]]:  # type: ignore[no-untyped-def]
    return {f.path: (f.status, f.reason) for f in job.files}


def test_a_repository_is_read_incrementally_between_commits(repo, services_factory):
    services = services_factory(scheduler_enabled=False)
    ingestor = make_ingestor(services)
    reads: list[str] = []
    load = ingestor.git.load  # type: ignore[union-attr]

    def counted(source, repo_, commit, item):  # type: ignore[no-untyped-def]
        reads.append(item.path)
        return load(source, repo_, commit, item)

    ingestor.git.load = counted  # type: ignore[union-attr,method-assign]
    source = GitRepo(repo.url, "main", "docs/")
    request = IngestRequest("handbook", "internal", source, "30d")

    first = ingestor.run(request)
    assert first.status == "succeeded", first.error
    assert first.counts["added"] == 3 and first.counts["failed"] == 0
    assert sorted(reads) == ["docs/laptops.md", "docs/leave.md", "docs/travel.md"]
    first_commit = repo.git("rev-parse", "HEAD")
    docs = services.catalog.documents("handbook")
    assert set(docs) == {"leave.md", "travel.md", "laptops.md"}  # relative to docs/, no hidden
    assert docs["leave.md"].source_modified_at == FIRST
    assert docs["leave.md"].uri == f"{repo.url}@{first_commit}#docs/leave.md"
    assert services.catalog.source("handbook").cursor == first_commit  # type: ignore[union-attr]

    answer = services.asker.ask("How many weeks of parental leave do parents get?", ["internal"])
    assert not answer.refused
    assert answer.citations[0].doc_id == "leave.md"
    assert first_commit in answer.citations[0].uri
    assert answer.citations[0].source_modified_at == FIRST.isoformat()

    reads.clear()
    again = ingestor.run(request)
    assert again.counts["unchanged"] == 3 and reads == []  # nothing read, TTLs restarted
    report = freshness_report(services.catalog, services.jobs, services.store, utc_now())
    (shown,) = report.sources
    assert (shown.kind, shown.commit) == ("git", first_commit)
    assert (shown.last_read.read, shown.last_read.not_read) == (0, 3)  # type: ignore[union-attr]

    repo.write("docs/leave.md", "# Leave\n\nParents get 20 weeks of paid parental leave.\n")
    (repo.path / "docs/laptops.md").unlink()
    repo.git("mv", "docs/travel.md", "docs/trips.md")
    repo.write("docs/canteen.md", "# Canteen\n\nThe canteen opens at 11:30 on weekdays.\n")
    second_commit = repo.commit("second", SECOND)

    reads.clear()
    third = ingestor.run(request)
    assert third.status == "succeeded", third.error
    assert sorted(reads) == ["docs/canteen.md", "docs/leave.md", "docs/trips.md"]
    seen = statuses(third)
    assert seen["leave.md"][0] == "updated"
    assert seen["canteen.md"][0] == "added"
    assert seen["trips.md"] == ("added", "renamed from travel.md")
    assert seen["laptops.md"][0] == seen["travel.md"][0] == "deleted"
    docs = services.catalog.documents("handbook")
    assert set(docs) == {"leave.md", "trips.md", "canteen.md"}
    assert docs["leave.md"].source_modified_at == SECOND
    assert docs["trips.md"].source_modified_at == SECOND  # the rename is its last change
    assert second_commit in docs["leave.md"].uri
    assert services.catalog.source("handbook").cursor == second_commit  # type: ignore[union-attr]
    answer = services.asker.ask("How many weeks of parental leave do parents get?", ["internal"])
    assert "20 weeks" in (answer.answer or "")


def test_a_file_that_fails_is_read_again_on_the_next_run(repo, services_factory):
    services = services_factory(scheduler_enabled=False)
    ingestor = make_ingestor(services)
    repo.write("docs/broken.pdf", "this is not a PDF")
    repo.commit("a broken file", SECOND)
    request = IngestRequest("handbook", "internal", GitRepo(repo.url, "main", "docs"), "30d")
    first = ingestor.run(request)
    assert first.status == "succeeded" and first.counts["failed"] == 1
    assert services.catalog.source("handbook").cursor is None  # type: ignore[union-attr]
    again = ingestor.run(request)
    assert statuses(again)["broken.pdf"][0] == "failed"  # read again, still broken


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("git+https://user:secret@git.example.com/r.git", "credentials in a git URL"),
        ("git+ext::sh -c touch% /tmp/pwned", "not allowed"),
        ("git+file:///srv/r.git?x=1", "no query or fragment"),
    ],
)
def test_bad_git_urls_are_refused(url, message):
    with pytest.raises(ValueError, match=message):
        GitRepo(url)


def test_bad_refs_and_paths_are_refused():
    with pytest.raises(ValueError, match="not a git ref"):
        GitRepo("git+file:///srv/r.git", ref="--upload-pack=touch")
    with pytest.raises(ValueError, match="inside the repository"):
        GitRepo("git+file:///srv/r.git", subpath="../etc")
    location = GitRepo("git+file:///srv/r.git", "v2", "docs", "https://h/{commit}/{path}")
    assert GitRepo.parse(location.location) == location


def test_the_jobs_api_takes_repositories_within_its_roots_only(repo, tmp_path, embedder):
    elsewhere = Repo(tmp_path.parent / f"{tmp_path.name}-elsewhere")
    elsewhere.write("a.md", "# A\n\nText.\n")
    elsewhere.commit("a", FIRST)
    settings = make_settings(
        tmp_path,
        scheduler_enabled=False,
        ingest_roots=[tmp_path, "git+https://git.example.com/docs/"],
    )
    with TestClient(create_app(settings)) as client:
        body = {"path": repo.url, "tier": "internal", "ref": "main", "subpath": "docs"}
        accepted = client.post("/ingest/jobs", json=body)
        assert accepted.status_code == 202, accepted.text
        assert accepted.json()["source"] == "handbook"
        outside = client.post("/ingest/jobs", json={"path": elsewhere.url, "tier": "internal"})
        assert outside.status_code == 403 and "outside the allowed" in outside.json()["detail"]
        other_host = {"path": "git+https://git.example.org/docs/x.git", "tier": "internal"}
        assert client.post("/ingest/jobs", json=other_host).status_code == 403
        secret = {"path": "git+https://u:p@git.example.com/docs/x.git", "tier": "internal"}
        refused = client.post("/ingest/jobs", json=secret)
        assert refused.status_code == 422 and "credentials" in refused.json()["detail"]
        job = finished_job(client, accepted.json()["job_id"])
        assert job["status"] == "succeeded" and job["counts"]["added"] == 3, job


def test_the_cli_and_the_manifest_take_git_urls(repo, tmp_path, services_factory):
    env = {**os.environ, "RAG_DATA_DIR": str(tmp_path / "data")}
    link = "https://git.example.com/handbook/blob/{commit}/{path}"
    args = ["ingest", repo.url, "--ref", "main", "--path", "docs", "--link", link, "--json"]
    args += ["--tier", "internal"]
    done = subprocess.run(
        [RAGOPS, *args], capture_output=True, text=True, env=env, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert (job["source"], job["counts"]["added"]) == ("handbook", 3)
    commit = repo.git("rev-parse", "HEAD")
    asked = subprocess.run(
        [RAGOPS, "ask", "How are trains booked?", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    cited = json.loads(asked.stdout)["citations"][0]
    assert cited["uri"] == f"https://git.example.com/handbook/blob/{commit}/docs/travel.md"

    manifest = tmp_path / "sources.toml"
    manifest.write_text(
        f'[[source]]\nname = "hb"\npath = "{repo.url}"\ntier = "internal"\nref = "main"\n'
        'subpath = "docs"\nschedule = "every 6h"\n'
    )
    (spec,) = load_manifest(manifest, ["verified", "internal"])
    assert spec.path == GitRepo(repo.url, "main", "docs")
    # A server registers the declared repository under its location, which a queued job is
    # run from again.
    services = services_factory(sources_file=manifest, scheduler_enabled=False)
    host = IngestionHost(services)
    host.start(schedule=False)
    try:
        registered = services.catalog.source("hb")
        assert registered is not None and registered.path == spec.path.location
        assert source_location(registered.path) == spec.path
    finally:
        host.stop()
