"""Backup archives: a gzipped tar whose first member is manifest.json, then the data (a SQLite file,
a pg_dump script, or one JSON-lines file per table). Every archive's SHA-256 is recorded when it is
taken and checked before anything reads it: a truncated or altered archive is refused whole."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path
from typing import Any

from services.backups.storage import BackupStorage
from services.errors import DomainError
from services.models import Backup

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
_CHUNK = 1024 * 1024


class CorruptArchive(DomainError):
    """The archive is missing, truncated or altered; it is not read, and nothing is changed."""


def describe_size(size: int | None) -> str:
    """An archive's size as people read it: 812 bytes, 14.2 KB, 3.1 MB."""
    if size is None:
        return "—"
    value = float(size)
    for unit in ("bytes", "KB", "MB"):
        if value < 1024:
            return f"{size:,} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} GB"


def write_archive(target: Path, manifest: dict[str, Any], files: dict[str, Path]) -> None:
    """Write manifest.json and `files` (name in the archive -> file on disk) into a .tar.gz."""
    manifest_file = target.with_name(f"{target.name}.{MANIFEST}")
    manifest_file.write_text(json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=False))
    try:
        with tarfile.open(target, "w:gz", compresslevel=6) as archive:
            archive.add(manifest_file, arcname=MANIFEST)
            for name, path in files.items():
                archive.add(path, arcname=name)
    finally:
        manifest_file.unlink(missing_ok=True)


def measure(storage: BackupStorage, key: str) -> tuple[str, int]:
    """The SHA-256 and size of the stored archive."""
    digest, size = hashlib.sha256(), 0
    with storage.open(key) as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def check_archive(storage: BackupStorage, backup: Backup) -> None:
    """Refuse an archive that is not exactly the one recorded: gone, cut short, grown or altered."""
    name = f"Backup #{backup.id} of {backup.tenant_slug}"
    if backup.storage_key is None or backup.sha256 is None or backup.size_bytes is None:
        raise CorruptArchive(f"{name} has no finished archive; there is nothing to restore from.")
    if not storage.exists(backup.storage_key):
        raise CorruptArchive(f"{name}: its archive {backup.storage_key} is missing from backup storage.")
    sha256, size = measure(storage, backup.storage_key)
    if size < backup.size_bytes:
        raise CorruptArchive(
            f"{name}: its archive is truncated ({size:,} of {backup.size_bytes:,} bytes are there). "
            "It cannot be restored; nothing was changed."
        )
    if size > backup.size_bytes or sha256 != backup.sha256:
        raise CorruptArchive(
            f"{name}: its archive is corrupted (SHA-256 {sha256[:16]}…, recorded {backup.sha256[:16]}…). "
            "It cannot be restored; nothing was changed."
        )


def read_manifest(storage: BackupStorage, key: str) -> dict[str, Any]:
    """manifest.json of the archive. Call check_archive first."""
    try:
        with storage.open(key) as handle, tarfile.open(fileobj=handle, mode="r:gz") as archive:
            member = archive.next()
            if member is None or member.name != MANIFEST:
                raise CorruptArchive(f"The archive {key} does not start with {MANIFEST}.")
            extracted = archive.extractfile(member)
            if extracted is None:
                raise CorruptArchive(f"The archive {key} has no readable {MANIFEST}.")
            manifest: dict[str, Any] = json.load(extracted)
    except (tarfile.TarError, OSError, EOFError, json.JSONDecodeError) as error:
        raise CorruptArchive(f"The archive {key} cannot be read: {error}.") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CorruptArchive(
            f"The archive {key} is in format version {manifest.get('format_version')!r}; "
            f"this version of Tenantry reads version {FORMAT_VERSION}."
        )
    return manifest


def extract_archive(storage: BackupStorage, key: str, into: Path) -> None:
    """Unpack the archive into the directory `into`. Call check_archive first."""
    into.mkdir(parents=True, exist_ok=True)
    try:
        with storage.open(key) as handle, tarfile.open(fileobj=handle, mode="r:gz") as archive:
            archive.extractall(into, filter="data")
    except (tarfile.TarError, OSError, EOFError) as error:
        raise CorruptArchive(f"The archive {key} cannot be unpacked: {error}.") from None
