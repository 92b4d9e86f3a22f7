"""Subscribers: double opt-in, one-click unsubscribe, preferences, CLI adds, CSV import/export.

The web and the CLI both call these functions; they hold the rules (REFERENCE.md section 5), the
store holds the SQL. Every function takes ``now`` so tests control time. Functions that would
send a mail return it as a ``Mail`` instead: the web hands it to a background sender (so the
subscribe page answers in the same time whatever the address's state), the CLI sends it at once.
"""

from digest.subscribers.csvfile import ImportReport, export_csv, import_csv
from digest.subscribers.manage import (
    Added,
    add,
    remove,
    resubscribe_by_token,
    send,
    unsubscribe_by_token,
    update_preferences,
)
from digest.subscribers.optin import (
    ConfirmState,
    check_confirmation,
    confirm,
    resend_confirmation,
    subscribe,
)
from digest.subscribers.values import (
    CADENCES,
    CONFIRM_TTL,
    MAILS_PER_DAY,
    Mail,
    cadence_words,
    clean_cadence,
    clean_categories,
    clean_name,
    consent_text,
    find_by_token,
    hash_token,
    new_token,
    normalise_email,
    parse_categories,
)

__all__ = [
    "CADENCES",
    "CONFIRM_TTL",
    "MAILS_PER_DAY",
    "Added",
    "ConfirmState",
    "ImportReport",
    "Mail",
    "add",
    "cadence_words",
    "check_confirmation",
    "clean_cadence",
    "clean_categories",
    "clean_name",
    "confirm",
    "consent_text",
    "export_csv",
    "find_by_token",
    "hash_token",
    "import_csv",
    "new_token",
    "normalise_email",
    "parse_categories",
    "remove",
    "resend_confirmation",
    "resubscribe_by_token",
    "send",
    "subscribe",
    "unsubscribe_by_token",
    "update_preferences",
]
