"""The landlord audit trail: who did what, when and from where, in a hash chain that shows tampering."""

from services.audit.search import AuditLine, AuditPage, export_csv, search
from services.audit.sentences import SwitchedWrite, sentence
from services.audit.trail import (
    ACTIONS,
    Actor,
    Caller,
    VerifyResult,
    command_line_actor,
    entry_hash,
    record,
    record_by,
    verify,
)

__all__ = [
    "ACTIONS",
    "Actor",
    "AuditLine",
    "AuditPage",
    "Caller",
    "SwitchedWrite",
    "VerifyResult",
    "command_line_actor",
    "entry_hash",
    "export_csv",
    "record",
    "record_by",
    "search",
    "sentence",
    "verify",
]
