"""Run folders that never lose data: the one place that claims, locks, verifies and writes a run's folder.

The contract:

- **A folder is a run's, and says so.** ``run.json`` (the manifest) names the kind of run (``train``,
  ``pretrain``, ``compare``) and the package version, and holds a SHA-256 checksum of every file the run
  wrote. A command refuses a non-empty folder that is not a run of its kind (and says what it found)
  unless forced; it refuses a folder that already holds a run unless resuming; ``resume`` on a folder
  with no run is an error.
- **One writer at a time.** An exclusive ``flock`` on ``.lock`` is held while the folder is open for
  writing; the OS releases it when the process dies, so a killed run can be resumed at once. A second
  writer fails with the holder's pid. Reading a finished run (a shared pre-training) takes a shared lock.
- **Integrity.** Opening a folder verifies every checksum before anything is written; a file that does not
  match (truncated, emptied, garbled, replaced) is named. Every write is atomic (temporary file + rename)
  and crash-safe: the manifest accepts the old and the new checksum of a file while it is being replaced,
  so a kill at any point leaves a folder that verifies. ``metrics.csv`` grows by appends, so its entry
  checks the prefix it recorded. Stale temporary files of a killed write are removed when a writer opens
  the folder.
- **Nothing non-finite is written**: a checkpoint holding NaN or infinite values is refused (``NonFiniteError``).
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import io
import json
import logging
import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from seqgan_rl import __version__, distributed
from seqgan_rl.config import GeneratorConfig
from seqgan_rl.data.subword import TokenizerVocabulary
from seqgan_rl.data.text import SPECIALS, Vocabulary
from seqgan_rl.models import Generator, TransformerGenerator, generator_config_from_dict
from seqgan_rl.utils import assert_finite_state, atomic_write_bytes, check_saved_config

try:  # POSIX; elsewhere folders are not locked (a warning says so)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

log = logging.getLogger(__name__)

MANIFEST = "run.json"
LOCK = ".lock"
CONFIG = "config.json"
KINDS = ("train", "pretrain", "compare")
LOAD_ERRORS = (
    EOFError, OSError, RuntimeError, KeyError, ValueError, TypeError, AttributeError, IndexError,
    pickle.UnpicklingError, zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError,
)  # fmt: skip
"""What a truncated, garbled or foreign file makes ``torch.load`` / ``json.loads`` raise."""


class RunFolderError(ValueError):
    """A run folder that cannot be used as asked: wrong kind, foreign files, no run to resume, in use."""


class CorruptFileError(RunFolderError):
    """A file of a run that is unreadable or does not match its checksum."""


class Folder:
    """Where a run writes: atomic writes, nothing non-finite. ``PlainFolder`` writes files as they are (a
    ``Trainer`` made by hand); ``RunFolder`` also keeps the manifest and the lock."""

    path: Path
    writes: bool = True
    """False on the ranks of a torchrun job other than rank 0 (``RankFolder``): they write nothing."""

    def save_bytes(self, name: str, data: bytes) -> None:
        atomic_write_bytes(data, self.path / name)

    def save_text(self, name: str, text: str) -> None:
        self.save_bytes(name, text.encode())

    def save_torch(self, name: str, obj: Any) -> None:
        """``torch.save`` atomically, after checking every tensor and float in ``obj`` is finite."""
        assert_finite_state(obj, f"{self.path / name}")
        buf = io.BytesIO()
        torch.save(obj, buf)
        self.save_bytes(name, buf.getvalue())

    def record_append(self, name: str) -> None:
        """Called after appending to ``name``."""

    def has(self, name: str) -> bool:
        return (self.path / name).exists()

    def load_torch(self, name: str, map_location: str | torch.device | None = None) -> Any:
        """``torch.load`` (weights only); an unreadable or unverified file raises ``CorruptFileError``."""
        return load_torch_file(self.path / name, map_location)

    def main_only(self, fn: Callable[[Folder], Any]) -> Any:
        """``fn(self)``; under torchrun, on rank 0 only, its result (or error) given to every rank."""
        return fn(self)

    def close(self) -> None: ...

    def __enter__(self) -> Folder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PlainFolder(Folder):
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)


class RankFolder(Folder):
    """A run folder shared by the ranks of a torchrun job (``seqgan_rl.distributed``): rank 0 holds the open
    folder (``inner``) and alone writes; the other ranks write nothing and receive what rank 0 reads
    (``has``, ``load_torch``: the files need not be visible to them, as on several machines). Every rank
    makes the same calls in the same order, so the broadcasts pair up."""

    def __init__(self, inner: Folder | None, path: str | os.PathLike) -> None:
        self.inner, self.path = inner, Path(path)
        self.writes = inner is not None

    def save_bytes(self, name: str, data: bytes) -> None:
        if self.inner is not None:
            self.inner.save_bytes(name, data)

    def save_torch(self, name: str, obj: Any) -> None:
        assert_finite_state(obj, f"{self.path / name}")  # every rank refuses the same NaN
        if self.inner is not None:
            self.inner.save_torch(name, obj)

    def record_append(self, name: str) -> None:
        if self.inner is not None:
            self.inner.record_append(name)

    def has(self, name: str) -> bool:
        return self.main_only(lambda f: f.has(name))

    def load_torch(self, name: str, map_location: str | torch.device | None = None) -> Any:
        """Rank 0 reads the file (onto the CPU) and sends it; the caller's ``load_state_dict`` places it."""
        return self.main_only(lambda f: f.load_torch(name, "cpu"))

    def main_only(self, fn: Callable[[Folder], Any]) -> Any:
        return distributed.on_main(lambda: fn(self.inner))

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()


def open_folder(opener: Callable[[], Folder | None], path: str | os.PathLike) -> Folder | None:
    """``opener()`` (a ``RunFolder.open``/``open_finished`` call); under torchrun it runs on rank 0 only and
    every rank gets a ``RankFolder`` around rank 0's folder (or ``None`` where ``opener`` returned ``None``),
    or rank 0's error."""
    if not distributed.enabled():
        return opener()
    inner = distributed.on_main(opener, share=False)
    found = distributed.broadcast_object(inner is not None)
    return RankFolder(inner if distributed.is_main() else None, path) if found else None


class RunFolder(Folder):
    """An open run folder (``RunFolder.open`` for writing, ``RunFolder.open_finished`` for reading a finished
    run); close it, or use it as a context manager. Every write goes through ``save_*``, so the manifest
    stays true."""

    def __init__(self, path: Path, kind: str, manifest: dict[str, Any], lock_fd: int | None, writable: bool):
        self.path, self.kind, self.manifest, self._lock_fd, self.writable = path, kind, manifest, lock_fd, writable

    @classmethod
    def open(
        cls, path: str | os.PathLike, kind: str, config: dict[str, Any], *, resume: bool, markers: tuple[str, ...],
        force: bool = False, what: str | None = None,
    ) -> RunFolder:  # fmt: skip
        """Claim ``path`` for writing a run of ``kind``: lock it, check what it holds, verify it, write
        ``config.json``.

        Args:
            config: the run's resolved config (saved; on resume it must equal the saved one, the differing
                fields are named).
            resume: continue the run the folder holds (an error when it holds none).
            markers: the files whose presence means the folder holds a run (e.g. its checkpoint).
            force: use a non-empty folder that is not a run of this kind (files of the same names are
                overwritten).
            what: how errors name the run (default: ``"<kind> run"``).

        Raises:
            RunFolderError: the folder is not usable as asked (the message says why and what to do).
            CorruptFileError: a file of the run does not verify.
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise RunFolderError(f"{path} is a file, not a folder: choose another output folder")
        new_dirs = _missing_folders(path)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _undo_claim(path, True, new_dirs)
            raise RunFolderError(f"cannot create the run folder {path}: {exc.strerror or exc}") from exc
        had_lock = (path / LOCK).exists()
        fd = None
        try:  # a refusal leaves the file system as it was: no lock file, no folder, no pid written
            fd = _lock(path, exclusive=True)
            manifest = _check_claim(path, kind, config, resume, markers, force, what)
        except BaseException:
            _unlock(fd)
            _undo_claim(path, had_lock, new_dirs)
            raise
        try:
            _write_pid(fd)
            folder = cls(path, kind, manifest, fd, writable=True)
            for tmp in path.glob(".*.tmp"):
                log.info("removing %s, left by an interrupted write", tmp)
                tmp.unlink(missing_ok=True)
            folder.save_text(CONFIG, json.dumps(config, indent=2))
            return folder
        except BaseException:
            _unlock(fd)
            raise

    @staticmethod
    def check(
        path: str | os.PathLike, kind: str, config: dict[str, Any], *, resume: bool, markers: tuple[str, ...],
        force: bool = False, what: str | None = None,
    ) -> None:  # fmt: skip
        """Raise what ``open`` with the same arguments would refuse, writing nothing and taking no lock: a
        command checks every folder it will use before it writes into any of them. ``open`` checks again
        under the lock."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise RunFolderError(f"{path} is a file, not a folder: choose another output folder")
        _check_not_in_use(path)
        _check_claim(path, kind, config, resume, markers, force, what)

    @classmethod
    def open_finished(
        cls, path: str | os.PathLike, kind: str, final: str, config: dict[str, Any] | None = None
    ) -> RunFolder | None:
        """Open a finished run read-only (a pre-training several runs share), or ``None`` when ``path``
        holds no finished run (``final`` is the file that marks one finished). Takes a shared lock and
        verifies every file; ``config`` (its ``runtime`` aside) must equal the saved one."""
        path = Path(path)
        if not path.is_dir() or not (path / final).exists():
            return None
        had_lock, fd = (path / LOCK).exists(), None
        try:
            fd = _lock(path, exclusive=False)
            manifest = _check_finished(path, kind, final, config)
            return cls(path, kind, manifest, fd, writable=False)
        except BaseException:
            _unlock(fd)
            _undo_claim(path, had_lock, [])
            raise

    @staticmethod
    def check_finished(path: str | os.PathLike, kind: str, final: str, config: dict[str, Any] | None = None) -> bool:
        """Whether ``path`` holds a finished run (as ``open_finished`` would open it), raising what it would
        refuse; reads only, takes no lock."""
        path = Path(path)
        if not path.is_dir() or not (path / final).exists():
            return False
        _check_not_in_use(path)
        _check_finished(path, kind, final, config)
        return True

    def close(self) -> None:
        _unlock(self._lock_fd)
        self._lock_fd = None

    def save_bytes(self, name: str, data: bytes) -> None:
        """Replace ``name`` atomically; meanwhile the manifest accepts its old and its new checksum."""
        if not self.writable:
            raise RunFolderError(f"{self.path} is open read-only")
        entry = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        files = self.manifest["files"]
        old = files.get(name)
        files[name] = {**entry, "previous": None if old is None else {k: v for k, v in old.items() if k != "previous"}}
        self._write_manifest()
        atomic_write_bytes(data, self.path / name)
        files[name] = entry
        self._write_manifest()

    def record_append(self, name: str) -> None:
        """After appending to ``name`` (``metrics.csv``): record the checksum of its content as a prefix (a
        row appended later, and not yet recorded when a kill comes, still verifies)."""
        data = (self.path / name).read_bytes()
        self.manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "prefix": True}
        self._write_manifest()

    def _write_manifest(self) -> None:
        atomic_write_bytes(json.dumps(self.manifest, indent=1).encode(), self.path / MANIFEST)

    def has(self, name: str) -> bool:
        return name in self.manifest["files"] and (self.path / name).exists()

    def load_torch(self, name: str, map_location: str | torch.device | None = None) -> Any:
        return load_torch_file(self.path / name, map_location, verified=True)  # verified when opened


# ---------------------------------------------------------------------------------------------- files
def load_torch_file(path: str | os.PathLike, map_location: Any = None, verified: bool = False) -> Any:
    """``torch.load(path, weights_only=True)``, checked against the manifest of its folder when it has one.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CorruptFileError: it does not match its checksum, or is not a readable checkpoint (named).
    """
    path = Path(path)
    if path.is_dir():
        raise CorruptFileError(f"{path} is a folder, not a checkpoint file")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} not found")
    if not verified:
        manifest = _read_manifest(path.parent) if (path.parent / MANIFEST).exists() else None
        if manifest is not None and path.name in manifest.get("files", {}):
            _verify_file(path, manifest["files"][path.name])
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:  # not torch's advice to load it with weights_only=False
        raise CorruptFileError(
            f"{path} is not a checkpoint of this package (it holds objects other than tensors)"
        ) from exc
    except LOAD_ERRORS as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CorruptFileError(f"{path} is not a readable checkpoint ({type(exc).__name__}: {first})") from exc


def read_json_file(path: str | os.PathLike) -> Any:
    """A JSON file's content; a missing or unreadable one raises an error that names it."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except LOAD_ERRORS as exc:
        raise CorruptFileError(f"{path} is not readable JSON ({type(exc).__name__}: {exc})") from exc


def save_generator(
    generator: Generator, folder: Folder, name: str, vocab: Vocabulary | TokenizerVocabulary | None = None
) -> None:
    """A self-contained generator checkpoint in ``folder``: weights, config and, for text, the vocabulary
    (every id's word, special tokens included: what ``TokenGenerationEnv(vocab=...)`` takes) and a Hugging Face
    tokenizer itself (``--tokenizer``)."""
    state = {"generator": generator.state_dict(), "generator_config": dataclasses.asdict(generator.config)}
    hf_config = getattr(getattr(generator, "model", None), "config", None)
    if hf_config is not None:  # a transformer: its architecture, so that the checkpoint stands alone
        state["hf_config"] = hf_config.to_dict()
    if vocab is not None:
        state["vocab"] = list(vocab.itos)
        if isinstance(vocab, TokenizerVocabulary):  # the tokenizer itself: the checkpoint decodes alone
            state["tokenizer"] = vocab.to_dict()
    folder.save_torch(name, state)


def load_generator(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[Generator, Vocabulary | TokenizerVocabulary | None]:
    """Load what ``save_generator`` wrote (checked against its run's manifest): the generator, in eval mode,
    and its vocabulary (``None`` for the oracle benchmark).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        CorruptFileError: if the file does not verify or is not a generator checkpoint.
    """
    state = load_torch_file(path, device)
    if not isinstance(state, dict) or "generator" not in state or "generator_config" not in state:
        raise CorruptFileError(f"{path} is not a generator checkpoint (expected generator, generator_config)")
    try:
        config = generator_config_from_dict(state["generator_config"])
        if isinstance(config, GeneratorConfig):
            generator = Generator(config)
        elif "hf_config" in state:
            generator = TransformerGenerator.from_hf_config(config, state["hf_config"])
        else:
            raise CorruptFileError(f"{path} holds a transformer generator without its architecture (hf_config)")
        generator = generator.to(device)
        generator.load_state_dict(state["generator"])
    except LOAD_ERRORS as exc:
        raise CorruptFileError(f"{path} is not a usable generator checkpoint ({exc})") from exc
    if "tokenizer" in state:
        return generator.eval(), TokenizerVocabulary.from_dict(state["tokenizer"])
    words = state.get("vocab")
    if words is not None and list(words[: len(SPECIALS)]) == list(SPECIALS):
        words = words[len(SPECIALS) :]  # written with its special tokens
    return generator.eval(), (Vocabulary(words) if words is not None else None)


# ---------------------------------------------------------------------------------------------- internals
def _read_manifest(path: Path) -> dict[str, Any] | None:
    file = path / MANIFEST
    if not file.exists():
        return None
    manifest = read_json_file(file)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict) or "kind" not in manifest:
        raise CorruptFileError(f"{file} is not a seqgan-rl run manifest")
    return manifest


def _verify(path: Path, manifest: dict[str, Any]) -> None:
    for name, entry in manifest["files"].items():
        if not (path / name).exists():
            if entry.get("previous", {}) is None:  # a new file whose write a kill interrupted
                continue
            raise CorruptFileError(f"{path / name} is missing (listed in {path / MANIFEST})")
        _verify_file(path / name, entry)


def _verify_file(file: Path, entry: dict[str, Any]) -> None:
    candidates = [entry] + ([entry["previous"]] if entry.get("previous") else [])
    data = file.read_bytes()
    for c in candidates:
        part = data[: c["bytes"]] if c.get("prefix") else data
        if len(part) == c["bytes"] and hashlib.sha256(part).hexdigest() == c["sha256"]:
            return
    raise CorruptFileError(
        f"{file} does not match its checksum in {file.parent / MANIFEST} ({len(data)} bytes, {entry['bytes']} "
        "recorded): it was truncated, changed or replaced; restore it or start the run in another folder"
    )


def _check_claim(
    path: Path, kind: str, config: dict[str, Any], resume: bool, markers: tuple[str, ...], force: bool,
    what: str | None,
) -> dict[str, Any]:  # fmt: skip
    """The checks of ``RunFolder.open`` (reads only): the manifest the folder will be written under, or the
    refusal."""
    if kind not in KINDS:
        raise ValueError(f"unknown run kind {kind!r}: one of {KINDS}")
    what = what or f"{kind} run"
    a = "an" if what[0] in "aeiou" else "a"
    no_run = f"{path} holds no {what} to resume: drop --resume to start one there"
    if not path.is_dir():
        if resume:
            raise RunFolderError(no_run)
        return {"format": 1, "kind": kind, "package": "seqgan-rl", "version": __version__, "files": {}}
    manifest = _read_manifest(path)
    if manifest is not None and manifest.get("kind") != kind and not force:
        raise RunFolderError(f"{path} holds a {manifest.get('kind')} run, not {a} {what}: choose another folder")
    if manifest is None or manifest.get("kind") != kind:
        found = _foreign_entries(path) if manifest is None else []
        if found and not force:
            raise RunFolderError(
                f"{path} is not empty and holds no seqgan-rl run ({_listing(found)}): choose an empty or "
                "new folder (or pass --force to write into it anyway)"
            )
        if resume:
            raise RunFolderError(no_run)
        return {"format": 1, "kind": kind, "package": "seqgan-rl", "version": __version__, "files": {}}
    has_run = any((path / m).exists() for m in markers)
    if has_run and not resume:
        raise RunFolderError(
            f"{path} already holds {a} {what}: pass --resume (resume=True) to continue it, or choose another "
            "output folder"
        )
    if resume and not has_run and not (path / CONFIG).exists():
        raise RunFolderError(no_run)
    _verify(path, manifest)
    if resume and (path / CONFIG).exists():
        _check_config(path, config)
    return manifest


def _check_finished(path: Path, kind: str, final: str, config: dict[str, Any] | None) -> dict[str, Any]:
    """The checks of ``RunFolder.open_finished`` (reads only): the finished run's manifest, or the refusal."""
    manifest = _read_manifest(path)
    if manifest is None or manifest.get("kind") != kind:
        raise RunFolderError(f"{path} holds {final} but is not a {kind} run folder (no {MANIFEST} of one)")
    _verify(path, manifest)
    if config is not None:
        _check_config(path, config, ignore=("runtime",))
    return manifest


def _missing_folders(path: Path) -> list[Path]:
    """The folders ``path.mkdir(parents=True)`` would create, outermost first."""
    missing = []
    for p in [path, *path.parents]:
        if p.exists():
            break
        missing.append(p)
    return missing[::-1]


def _undo_claim(path: Path, had_lock: bool, new_dirs: list[Path]) -> None:
    """After a refusal: remove the lock file and the folders the claim created (only if still empty)."""
    if not had_lock:
        (path / LOCK).unlink(missing_ok=True)
    for folder in reversed(new_dirs):
        try:
            folder.rmdir()
        except OSError:  # not empty (another process wrote there meanwhile): leave it
            break


def _check_config(path: Path, config: dict[str, Any], ignore: tuple[str, ...] = ()) -> None:
    try:
        check_saved_config(path / CONFIG, config, ignore)
    except ValueError as exc:
        raise RunFolderError(str(exc)) from None


def _foreign_entries(path: Path) -> list[str]:
    """What a folder holds besides the lock and run folders of its own (a run's ``pretrain/``)."""
    return sorted(p.name for p in path.iterdir() if p.name != LOCK and not (p / MANIFEST).is_file())


def _listing(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _lock(path: Path, exclusive: bool) -> int | None:
    if fcntl is None:  # pragma: no cover
        log.warning("no fcntl here: %s is not locked against a second writer", path)
        return None
    fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except OSError as exc:
        error = _in_use(path, fd) if exc.errno in (errno.EAGAIN, errno.EACCES) else exc
        os.close(fd)
        if error is exc:
            raise
        raise error from exc
    return fd


def _check_not_in_use(path: Path) -> None:
    """Raise as ``_lock`` does when another process writes in ``path``, without creating the lock file or
    keeping a lock."""
    if fcntl is None or not (path / LOCK).is_file():
        return
    fd = os.open(path / LOCK, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            raise _in_use(path, fd) from exc
        raise
    finally:
        os.close(fd)  # releases the shared lock taken for the test


def _in_use(path: Path, fd: int) -> RunFolderError:
    """The refusal of a folder whose lock another process holds (it wrote its pid into the lock file)."""
    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
    return RunFolderError(
        f"{path} is in use by another process (pid {holder}): wait for it to finish, or choose another folder"
    )


def _write_pid(fd: int | None) -> None:
    """Sign the held exclusive lock with this process's pid (what a refused second writer is told)."""
    if fd is not None:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


def _unlock(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)  # closing the descriptor releases the flock
