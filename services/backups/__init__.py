"""Tenant backups: a job per backup (lock → dump → checksum → manifest → verify), archives in backup
storage with their SHA-256 and manifest, and a verification that restores each into a scratch
store. Importing this package registers the backup job kind."""

from services.backups.archive import CorruptArchive
from services.backups.requests import (
    BACKUP,
    VERIFY_BACKUP,
    RequestedBackup,
    backups_of,
    get_backup,
    request_backup,
    request_verification,
)
from services.backups.storage import BackupStorage, DirectoryStorage, backup_storage

__all__ = [
    "BACKUP",
    "VERIFY_BACKUP",
    "BackupStorage",
    "CorruptArchive",
    "DirectoryStorage",
    "RequestedBackup",
    "backup_storage",
    "backups_of",
    "get_backup",
    "request_backup",
    "request_verification",
]
