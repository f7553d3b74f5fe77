"""Tenant backups: a job per backup (lock → dump → checksum → manifest → verify), archives in backup
storage with their SHA-256 and manifest, and a verification that restores each into a scratch
store; restores into the tenant itself (restores.py) or into a new tenant (copies.py). Importing
this package registers their job kinds."""

from services.backups.archive import CorruptArchive
from services.backups.copies import RESTORE_COPY, CopyTarget, request_restore_copy
from services.backups.requests import (
    BACKUP,
    VERIFY_BACKUP,
    RequestedBackup,
    backups_of,
    get_backup,
    request_backup,
    request_verification,
)
from services.backups.restorable import RequestedRestore
from services.backups.restores import request_restore
from services.backups.storage import BackupStorage, DirectoryStorage, backup_storage

__all__ = [
    "BACKUP",
    "RESTORE_COPY",
    "VERIFY_BACKUP",
    "BackupStorage",
    "CopyTarget",
    "CorruptArchive",
    "DirectoryStorage",
    "RequestedBackup",
    "RequestedRestore",
    "backup_storage",
    "backups_of",
    "get_backup",
    "request_backup",
    "request_restore",
    "request_restore_copy",
    "request_verification",
]
