"""Delivery: one message per recipient, built cheaply, sent exactly once over SMTP.

message.py        MIME built once per issue variant; per recipient only values and headers
transport.py      the aiosmtplib seam: pooled connections, TLS, AUTH, rate; Maildir outbox
dkim.py           optional DKIM signing of the exact bytes sent
deliver.py        exactly-once sending of an issue (the deliveries ledger)
lock.py           one sender at a time
transactional.py  single mails: confirmations, curator reports
"""
