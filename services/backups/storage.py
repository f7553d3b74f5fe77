"""Where backup archives are kept. A directory under the data dir by default; anything that can
put, open, measure and delete a named blob (an object store) can take its place.

Keys are relative paths, `<tenant slug>/<file name>`. Methods block: call them from a thread."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import BinaryIO, Protocol

from services.settings import Settings


class BackupStorage(Protocol):
    def put(self, key: str, source: Path) -> None:
        """Store the finished file `source` under `key`, whole or not at all."""

    def open(self, key: str) -> BinaryIO:
        """The archive under `key`, for reading. FileNotFoundError when it is not there."""

    def size(self, key: str) -> int:
        """Its length in bytes. FileNotFoundError when it is not there."""

    def delete(self, key: str) -> None:
        """Remove it; nothing happens when it is already gone."""

    def exists(self, key: str) -> bool: ...


class DirectoryStorage:
    """Archives as files under `root` (by default `<data dir>/backups/<tenant slug>/…`)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"backup key {key!r} points outside the backup directory")
        return path

    def put(self, key: str, source: Path) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Copied under a temporary name and renamed: a crash never leaves a half-written archive
        # under its real name.
        partial = target.with_name(f".{target.name}.partial")
        shutil.copyfile(source, partial)
        with partial.open("rb") as handle:
            os.fsync(handle.fileno())
        partial.replace(target)

    def open(self, key: str) -> BinaryIO:
        return self.path(key).open("rb")

    def size(self, key: str) -> int:
        return self.path(key).stat().st_size

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()


def backup_storage(settings: Settings) -> BackupStorage:
    return DirectoryStorage(settings.data_dir / "backups")
