"""Previous released versions of manifests, for the gate's breaking-change rules (``--against``).

``--against`` names a directory of released manifests or a git revision; from a revision each
manifest's file is read at the same path in that commit (one ``git cat-file --batch`` for all).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from meshgov.errors import InputError, MeshgovError

if TYPE_CHECKING:
    from meshgov.core.manifest import Manifest
    from meshgov.gate import SourcedManifest


def _by_id(manifests: Iterable[Manifest]) -> dict[str, Manifest]:
    return {m.id: m for m in manifests}


def load_previous_dir(root: Path) -> dict[str, Manifest]:
    """The previously released manifests in ``root``, by product id."""
    from meshgov.catalog import manifest_paths
    from meshgov.gate import load_sourced_manifest

    return _by_id(load_sourced_manifest(p).manifest for p in manifest_paths([root]))


def _git(
    args: Sequence[str], cwd: Path, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, input=stdin, capture_output=True, check=False, timeout=120
        )
    except FileNotFoundError:
        raise InputError("--against a git revision needs git, which is not installed") from None
    except subprocess.TimeoutExpired:
        raise InputError("git did not answer within 120 s") from None


@dataclass
class GitRevision:
    """Reads files of one commit (``git cat-file --batch``: one process for every file)."""

    ref: str
    cwd: Path
    top: Path = field(init=False)
    commit: str = field(init=False)

    def __post_init__(self) -> None:
        top = _git(["rev-parse", "--show-toplevel"], self.cwd)
        if top.returncode != 0:
            raise InputError(
                f"--against {self.ref!r}: not a directory, and {self.cwd} is not in a git "
                "repository to resolve it as a revision"
            )
        self.top = Path(top.stdout.decode().strip()).resolve()
        verify = _git(
            ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{self.ref}^{{commit}}"],
            self.top,
        )
        if verify.returncode != 0 or self.ref.startswith("-"):
            raise InputError(
                f"--against {self.ref!r}: not a directory, and not a git revision of {self.top}"
                + (_fetch_hint(self.ref, self.top) if not self.ref.startswith("-") else "")
            )
        self.commit = verify.stdout.decode().strip()

    def relative(self, path: Path) -> str | None:
        try:
            return path.resolve().relative_to(self.top).as_posix()
        except ValueError:
            return None

    def read_files(self, paths: Sequence[str]) -> dict[str, bytes]:
        """Contents of ``paths`` (relative to the top) at the commit; absent files are left out."""
        if not paths:
            return {}
        request = "".join(f"{self.commit}:{p}\n" for p in paths).encode()
        proc = _git(["cat-file", "--batch"], self.top, request)
        if proc.returncode != 0:
            raise InputError(f"--against {self.ref!r}: git cat-file failed: {proc.stderr.decode()}")
        out = proc.stdout
        found: dict[str, bytes] = {}
        pos = 0
        for path in paths:
            end = out.index(b"\n", pos)
            header = out[pos:end].split()
            pos = end + 1
            if len(header) == 3 and header[1] == b"blob":
                size = int(header[2])
                found[path] = out[pos : pos + size]
                pos += size + 1
            elif len(header) == 3:  # a tree or another object: skip its body
                pos += int(header[2]) + 1
        return found


def _fetch_hint(ref: str, top: Path) -> str:
    """How to get ``ref`` into a clone that lacks it (a CI checkout is shallow, one branch)."""
    remotes = _git(["remote"], top).stdout.decode().split()
    shallow = _git(["rev-parse", "--is-shallow-repository"], top).stdout.decode().strip()
    clone = "this clone is shallow and " if shallow == "true" else ""
    remote, _, branch = ref.partition("/")
    if branch and remote in remotes:
        fetch = f"git fetch --no-tags --depth=1 {remote} {branch}:refs/remotes/{remote}/{branch}"
        return f"; {clone}does not have it: run `{fetch}` first"
    if remotes:
        fetch = f"git fetch --depth=1 {remotes[0]} tag {ref}"
        return f"; {clone}may not have it: for a tag, run `{fetch}` first"
    return ""


def load_previous_git(
    ref: str, paths: Sequence[Path]
) -> dict[Path, SourcedManifest | MeshgovError]:
    """The version of each manifest file at git revision ``ref`` (same path), when it existed."""
    if not paths:
        return {}
    # The repository of the first manifest that exists (a missing one is reported on its own).
    anchor = next((p.resolve().parent for p in paths if p.is_file()), Path.cwd())
    revision = GitRevision(ref, anchor)
    relative = {path: revision.relative(path) for path in paths}
    contents = revision.read_files(sorted({r for r in relative.values() if r}))
    from meshgov.gate import read_sourced_manifest

    previous: dict[Path, SourcedManifest | MeshgovError] = {}
    for path, rel in relative.items():
        if rel is None or rel not in contents:
            continue
        try:
            previous[path] = read_sourced_manifest(contents[rel], f"{ref}:{rel}")
        except MeshgovError as exc:
            previous[path] = exc
    return previous
