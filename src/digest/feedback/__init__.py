"""Bounces and complaints that arrive after the 250: provider webhooks and delivery reports.

    provider webhook (ses, postmark, mailgun, sendgrid) -> verify -> parse -> Event
    VERP envelope sender -> DSN / ARF in a Maildir or IMAP folder (reports) -> Event
    Event -> apply (once per (source, event id)) -> suppress, unsubscribe, or record

Every source is read into the same plain model (digest.feedback.model.Event), and one function
(digest.feedback.apply.apply) maps it onto the store with the rules the send loop applies to
refusals at SMTP time (digest.send.settle).
"""

from digest.feedback.model import Event, Kind

__all__ = ["Event", "Kind"]
