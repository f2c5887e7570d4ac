"""Git repositories as sources: docs-as-code, read at a ref, incrementally.

    ragops ingest git+https://git.example.com/handbook.git --ref main --path docs/
    ragops ingest git+file:///srv/repos/handbook.git --link 'https://git.example.com/handbook/blob/{commit}/{path}'

The repository is cloned once (bare) under the data dir and fetched on later runs. A run reads
the files under `subpath` at the ref's commit. After the first run it reads only what changed
since the last commit it ingested in full (`git diff --name-status -M`): files added, modified
or renamed are read, deleted ones leave the index (they are no longer in the tree), and every
other document is "unchanged" without its content being read. A document's
`source_modified_at` is the commit time of the last commit that touched it; its `uri` names the
commit (or follows the operator's `link` pattern).

Credentials come only from the environment git already reads (a credential helper,
`GIT_ASKPASS`, `GIT_CONFIG_*` headers): a URL with a user name or password in it is refused, so
none is stored in the ops database, a job record or a log. Git never prompts
(`GIT_TERMINAL_PROMPT=0`), speaks only the transports named in `ALLOWED_PROTOCOLS`, and each
command has a deadline.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qsl, urlencode, urlsplit

from ingestion.loaders import LoadError, LoadLimits, load_file, printable_name
from rag.ops.catalog import source_kind
from rag.types import LoadedDocument

SCHEME = "git+"
ALLOWED_PROTOCOLS = "file:https:http:ssh"
GIT_TIMEOUT_S = 600.0
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")


class GitError(Exception):
    """The repository could not be cloned, fetched or read: the job fails with this reason."""


def is_git_location(location: str) -> bool:
    return source_kind(location) == "git"


@dataclass(frozen=True)
class GitRepo:
    """A repository source: `url` (git+https://…, git+file://…), the `ref` to read, the
    folder within it (`subpath`; empty: the whole tree) and the citation link pattern (`link`,
    with `{commit}` and `{path}`; default: the repository URL, commit and path)."""

    url: str
    ref: str = "HEAD"
    subpath: str = ""
    link: str | None = None

    def __post_init__(self) -> None:
        if not is_git_location(self.url):
            raise ValueError(f"a git source is a git+https:// or git+file:// URL, not {self.url!r}")
        parts = urlsplit(self.url[len(SCHEME) :])
        if parts.scheme not in ALLOWED_PROTOCOLS.split(":"):
            raise ValueError(f"git transport {parts.scheme!r} is not allowed ({ALLOWED_PROTOCOLS})")
        if parts.username or parts.password:
            raise ValueError(
                "credentials in a git URL would be stored with the source; give them to git "
                "through the environment instead (a credential helper, GIT_ASKPASS)"
            )
        if parts.query or parts.fragment:
            raise ValueError("a git URL takes no query or fragment; use --ref and --path")
        if not _REF.match(self.ref) or ".." in self.ref:
            raise ValueError(f"not a git ref: {self.ref!r}")
        sub = PurePosixPath(self.subpath.strip("/")) if self.subpath.strip("/") else None
        if sub is not None and (sub.is_absolute() or ".." in sub.parts):
            raise ValueError(f"--path must be a folder inside the repository: {self.subpath!r}")

    @property
    def name(self) -> str:
        """The source name when none is given: the repository's (`handbook` of handbook.git)."""
        return self.url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git") or "repository"

    @property
    def remote(self) -> str:
        return self.url[len(SCHEME) :]

    @property
    def folder(self) -> str:
        return self.subpath.strip("/")

    @property
    def location(self) -> str:
        """How jobs, the catalog and the freshness report name the source; `parse` reads it
        back (a queued job is run from it)."""
        spec = {"ref": self.ref, "path": self.folder, "link": self.link or ""}
        return f"{self.url}#{urlencode({k: v for k, v in spec.items() if v})}"

    @classmethod
    def parse(cls, location: str) -> GitRepo:
        url, _, spec = location.partition("#")
        given = dict(parse_qsl(spec))
        return cls(url, given.get("ref", "HEAD"), given.get("path", ""), given.get("link"))

    @property
    def local_path(self) -> Path | None:
        """The repository's folder for a git+file:// URL (checked against the ingest roots)."""
        parts = urlsplit(self.remote)
        return Path(parts.path) if parts.scheme == "file" else None

    def uri(self, commit: str, path: str) -> str:
        if self.link:
            return self.link.format(commit=commit, path=path)
        return f"{self.url}@{commit}#{path}"


@dataclass(frozen=True)
class GitFile:
    """One file of the tree at the commit: to be read, or unchanged since the last run."""

    doc_id: str
    path: str
    unchanged: bool = False
    renamed_from: str | None = None


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ALLOW_PROTOCOL": ALLOWED_PROTOCOLS,
        "GIT_CONFIG_NOSYSTEM": "1",
        "LC_ALL": "C",
    }


class GitReader:
    """Keeps bare clones under `root` (one per source) and reads their trees."""

    def __init__(self, root: Path, limits: LoadLimits) -> None:
        self.root = root
        self.limits = limits

    def _git(self, *args: str, cwd: Path | None = None, data: bool = False) -> bytes:
        try:
            done = subprocess.run(
                ["git", *args],
                cwd=cwd,
                env=_env(),
                capture_output=True,
                timeout=GIT_TIMEOUT_S,
                check=False,
            )
        except FileNotFoundError as exc:
            raise GitError("git is not installed (Debian: apt-get install git)") from exc
        except subprocess.TimeoutExpired as exc:
            raise GitError(f"git {args[0]} took longer than {GIT_TIMEOUT_S:.0f} s") from exc
        if done.returncode != 0:
            said = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise GitError(f"git {args[0]} failed: {said[-1] if said else done.returncode}")
        return done.stdout

    def mirror(self, source: str) -> Path:
        return self.root / (re.sub(r"[^A-Za-z0-9._-]", "_", source) + ".git")

    def sync(self, source: str, repo: GitRepo) -> Path:
        """Clone the repository once, then fetch: returns the bare clone."""
        mirror = self.mirror(source)
        if not (mirror / "HEAD").exists():
            self.root.mkdir(parents=True, exist_ok=True)
            self._git("clone", "--bare", "--quiet", "--", repo.remote, str(mirror))
        else:
            self._git(
                "fetch",
                "--quiet",
                "--prune",
                "--force",
                "--",
                repo.remote,
                "+refs/heads/*:refs/heads/*",
                "+refs/tags/*:refs/tags/*",
                cwd=mirror,
            )
        return mirror

    def commit(self, mirror: Path, ref: str) -> str:
        try:
            out = self._git(
                "rev-parse", "--verify", "--end-of-options", f"{ref}^{{commit}}", cwd=mirror
            )
        except GitError as exc:
            raise GitError(f"no commit for ref {ref!r} in the repository") from exc
        return out.decode().strip()

    def _tree(self, mirror: Path, commit: str, folder: str) -> list[str]:
        args = ["ls-tree", "-r", "-z", "--name-only", commit]
        out = self._git(*args, *(["--", folder] if folder else []), cwd=mirror)
        return [p for p in out.decode("utf-8", "surrogateescape").split("\0") if p]

    def _changes(self, mirror: Path, old: str, new: str, folder: str) -> dict[str, str | None]:
        """Paths added, modified or renamed between two commits (a rename maps to its old path)."""
        args = ["diff", "--name-status", "-M", "-z", old, new]
        out = self._git(*args, *(["--", folder] if folder else []), cwd=mirror)
        fields = out.decode("utf-8", "surrogateescape").split("\0")
        changed: dict[str, str | None] = {}
        i = 0
        while i < len(fields) - 1:
            status = fields[i]
            if status.startswith(("R", "C")):
                changed[fields[i + 2]] = fields[i + 1] if status.startswith("R") else None
                i += 3
            else:
                if not status.startswith("D"):
                    changed[fields[i + 1]] = None
                i += 2
        return changed

    def _known_commit(self, mirror: Path, commit: str | None) -> bool:
        if not commit:
            return False
        try:
            self._git("cat-file", "-e", f"{commit}^{{commit}}", cwd=mirror)
        except GitError:  # history rewritten (force push) or another repository: read it all
            return False
        return True

    def files(
        self, source: str, repo: GitRepo, known: set[str], last: str | None
    ) -> tuple[str, list[GitFile]]:
        """The ref's commit and every file under the folder: read when new or changed since
        `last` (the last commit ingested in full), else unchanged."""
        mirror = self.sync(source, repo)
        commit = self.commit(mirror, repo.ref)
        paths = self._tree(mirror, commit, repo.folder)
        incremental = self._known_commit(mirror, last)
        changes = self._changes(mirror, last, commit, repo.folder) if incremental and last else {}
        out: list[GitFile] = []
        for path in paths:
            if any(part.startswith(".") for part in PurePosixPath(path).parts):
                continue  # hidden files and folders (.github/, .gitignore), as in a folder source
            doc_id = printable_name(_relative(path, repo.folder))
            if incremental and doc_id in known and path not in changes:
                out.append(GitFile(doc_id, path, unchanged=True))
            else:
                out.append(GitFile(doc_id, path, renamed_from=changes.get(path)))
        return commit, out

    def load(self, source: str, repo: GitRepo, commit: str, item: GitFile) -> LoadedDocument:
        """One file of the commit through the ordinary loaders (LoadError or GitError)."""
        mirror = self.mirror(source)
        size = int(self._git("cat-file", "-s", f"{commit}:{item.path}", cwd=mirror))
        if size > self.limits.max_bytes:
            raise LoadError(
                f"file is {size} bytes, over the {self.limits.max_bytes}-byte limit "
                "(RAG_MAX_FILE_BYTES)"
            )
        blob = self._git("cat-file", "blob", f"{commit}:{item.path}", cwd=mirror)
        changed = self._git("log", "-1", "--format=%cI", commit, "--", item.path, cwd=mirror)
        with tempfile.TemporaryDirectory(prefix="ragops-git-") as tmp:
            file = Path(tmp) / PurePosixPath(item.path).name
            file.write_bytes(blob)
            doc = load_file(file, item.doc_id, self.limits)
        doc.uri = repo.uri(commit, item.path)
        doc.modified_at = datetime.fromisoformat(changed.decode().strip())
        if item.renamed_from:
            doc.notes.append(f"renamed from {_relative(item.renamed_from, repo.folder)}")
        return doc


def _relative(path: str, folder: str) -> str:
    return path[len(folder) + 1 :] if folder and path.startswith(folder + "/") else path
