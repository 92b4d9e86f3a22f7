"""The database schema as an ordered, append-only list of migrations.

Never edit or reorder a migration that has shipped: append a new one. Each runs once, in its own
transaction, and is recorded in ``schema_migrations``. Times are stored as UTC ISO-8601 text
(``2026-11-30T08:00:00Z``) so they sort and compare as strings.
"""

from __future__ import annotations

# A migration is SQLite's SQL, which digest.store.dialect gives PostgreSQL's types, or a dict
# {"sqlite": ..., "postgresql": ...} where the engines need different statements.
MIGRATIONS: list[tuple[str, str | dict[str, str]]] = [
    (
        "initial schema",
        """
        CREATE TABLE meta (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );

        -- One row per blog of blogs.yaml (keyed by the blog's id), the state of polite fetching.
        CREATE TABLE feeds (
            blog           TEXT PRIMARY KEY,
            configured_url TEXT,              -- feed: (or homepage:) as blogs.yaml said it
            url            TEXT,              -- URL we fetch: after discovery / permanent moves
            etag           TEXT,              -- validators, byte-for-byte as last received
            last_modified  TEXT,
            status         TEXT NOT NULL DEFAULT 'new',   -- new | ok | error | gone
            http_status    INTEGER,
            error          TEXT,              -- a reason a person understands
            warning        TEXT,              -- parsed, but oddly (bozo with entries)
            failures       INTEGER NOT NULL DEFAULT 0,    -- consecutive
            last_fetch     TEXT,
            last_success   TEXT,
            next_poll      TEXT,              -- not before (Cache-Control, Retry-After, backoff)
            seeded         INTEGER NOT NULL DEFAULT 0     -- first run done: back catalogue seen
        );

        -- Every post ever seen. Only plain text is kept: no feed HTML anywhere.
        CREATE TABLE posts (
            id          TEXT PRIMARY KEY,     -- '<blog>-<8 hex>', stable; used in drafts
            blog        TEXT NOT NULL,
            key         TEXT NOT NULL,        -- guid, else link, else hash(title, date)
            link_title  TEXT,                 -- normalised link + title: GUID-rewrite detection
            canonical   TEXT,                 -- normalised URL: cross-blog duplicates
            title       TEXT NOT NULL,
            url         TEXT,
            author      TEXT,
            published   TEXT,                 -- as claimed, clamped to first_seen
            first_seen  TEXT NOT NULL,
            excerpt     TEXT NOT NULL DEFAULT '',
            backlog     INTEGER NOT NULL DEFAULT 0,   -- recorded on a first run, outside the window
            duplicate_of TEXT,                -- the same canonical URL seen earlier in another blog
            UNIQUE (blog, key)
        );
        CREATE INDEX posts_first_seen ON posts (first_seen);
        CREATE INDEX posts_link_title ON posts (blog, link_title);
        CREATE INDEX posts_canonical ON posts (canonical);

        -- Issues once sending started: frozen, and the web archive.
        CREATE TABLE issues (
            number      INTEGER PRIMARY KEY,
            subject     TEXT NOT NULL,
            since       TEXT NOT NULL,        -- window [since, until) of first_seen
            until       TEXT NOT NULL,
            content     TEXT NOT NULL,        -- JSON of the issue content (renderable again)
            html        TEXT NOT NULL,        -- web-archive rendering, every category
            text        TEXT NOT NULL,
            status      TEXT NOT NULL,        -- sending | sent
            created_at  TEXT NOT NULL,
            sent_at     TEXT
        );
        -- What an issue featured, so the archive pick never repeats and no post is sent twice.
        CREATE TABLE featured (
            issue   INTEGER NOT NULL REFERENCES issues (number),
            post_id TEXT,
            url     TEXT NOT NULL,
            kind    TEXT NOT NULL,            -- post | archive
            PRIMARY KEY (issue, url)
        );
        CREATE INDEX featured_url ON featured (url);

        CREATE TABLE subscribers (
            id              INTEGER PRIMARY KEY,
            email           TEXT NOT NULL UNIQUE,          -- normalised by email-validator
            name            TEXT,
            categories      TEXT,                          -- JSON list of category ids; NULL = all
            status          TEXT NOT NULL,                 -- pending|confirmed|unsubscribed|bounced
            token           TEXT NOT NULL UNIQUE,          -- opaque, public, in links
            source          TEXT NOT NULL,                 -- web | cli | import
            requested_at    TEXT NOT NULL,
            request_ip      TEXT,
            request_ua      TEXT,
            consent_text    TEXT,
            confirmed_at    TEXT,
            confirm_ip      TEXT,
            confirm_ua      TEXT,
            unsubscribed_at TEXT
        );
        CREATE INDEX subscribers_status ON subscribers (status);

        -- Double opt-in: only the sha256 of a confirmation token is stored; single use. Each row
        -- carries the request it confirms (what was asked, from where): it becomes the
        -- subscriber's consent record only once confirmed, so an unconfirmed request never
        -- overwrites the record of an earlier, confirmed one.
        CREATE TABLE confirmations (
            token_hash    TEXT PRIMARY KEY,
            subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
            created_at    TEXT NOT NULL,
            expires_at    TEXT NOT NULL,
            used_at       TEXT,
            name          TEXT,
            categories    TEXT,               -- JSON list of category ids; NULL = all
            source        TEXT NOT NULL,
            request_ip    TEXT,
            request_ua    TEXT,
            consent_text  TEXT
        );
        CREATE INDEX confirmations_subscriber ON confirmations (subscriber_id, created_at);

        -- Every mail the signup flow sent (confirmations, "already subscribed" notices), for the
        -- per-address daily cap: the subscribe form must not be a way to mail-bomb a stranger.
        CREATE TABLE signup_mails (
            email   TEXT NOT NULL,
            kind    TEXT NOT NULL,            -- confirm | notice
            sent_at TEXT NOT NULL
        );
        CREATE INDEX signup_mails_email ON signup_mails (email, sent_at);

        -- Addresses that must not be re-added silently (unsubscribed, hard bounce).
        CREATE TABLE suppressions (
            email      TEXT PRIMARY KEY,
            reason     TEXT NOT NULL,
            created_at TEXT NOT NULL
        );

        -- Exactly once: the audience is snapshotted here in one transaction when sending starts.
        CREATE TABLE deliveries (
            issue         INTEGER NOT NULL REFERENCES issues (number),
            subscriber_id INTEGER NOT NULL REFERENCES subscribers (id),
            email         TEXT NOT NULL,
            variant       TEXT NOT NULL,      -- the category set this recipient gets
            message_id    TEXT NOT NULL UNIQUE,   -- reused on every retry of this recipient
            status        TEXT NOT NULL DEFAULT 'queued',
                          -- queued | sending | sent | deferred | bounced | skipped | failed
                          -- (failed: still temporary errors after deliveries.MAX_ATTEMPTS)
            attempts      INTEGER NOT NULL DEFAULT 0,
            reply         TEXT,               -- the server's last reply
            next_attempt  TEXT,
            updated_at    TEXT,
            PRIMARY KEY (issue, subscriber_id)
        );
        CREATE INDEX deliveries_status ON deliveries (issue, status);

        -- What happened, for `digest status`, reports and the audit trail (--force re-adds).
        CREATE TABLE events (
            id     INTEGER PRIMARY KEY,
            at     TEXT NOT NULL,
            kind   TEXT NOT NULL,
            detail TEXT NOT NULL
        );

        -- The weekly job, one row per run: a scheduled slot (catch-up, review, hold) or a
        -- manual `digest run --once` (slot NULL).
        CREATE TABLE runs (
            id          INTEGER PRIMARY KEY,
            slot        TEXT UNIQUE,          -- the scheduled time this run served (UTC)
            started_at  TEXT NOT NULL,
            finished_at TEXT,
            reviewed_at TEXT,                 -- review mode: preview mailed to the curator
            attempts    INTEGER NOT NULL DEFAULT 0,
            outcome     TEXT,                 -- sent | skipped | held | nothing | failed
            issue       INTEGER,              -- the issue (or draft) number it concerned
            error       TEXT
        );
        """,
    ),
    (
        "deliveries: bounce class",
        """
        -- The RFC 3463 class of a delivery's last refusal (digest.send.bounces): soft bounces
        -- on several issues suppress an address, policy refusals never do.
        ALTER TABLE deliveries ADD COLUMN bounce TEXT;
        CREATE INDEX deliveries_soft ON deliveries (subscriber_id) WHERE bounce = 'soft';
        """,
    ),
    (
        "signup: revoked confirmations, mailbox caps",
        """
        -- A confirmation link stops working once another link of the address was confirmed, or
        -- the address left (unsubscribe, removal): only a link sent after that brings it back.
        ALTER TABLE confirmations ADD COLUMN revoked_at TEXT;
        -- The mailbox a signup mail went to: the address with any +tag removed, case folded, so
        -- victim+1@, victim+2@, ... share one daily cap. Older rows are filled in the same way.
        ALTER TABLE signup_mails ADD COLUMN mailbox TEXT;
        UPDATE signup_mails SET mailbox = lower(CASE
            WHEN instr(email, '+') BETWEEN 1 AND instr(email, '@')
            THEN substr(email, 1, instr(email, '+') - 1) || substr(email, instr(email, '@'))
            ELSE email END);
        CREATE INDEX signup_mails_mailbox ON signup_mails (mailbox, sent_at);
        CREATE INDEX signup_mails_sent_at ON signup_mails (sent_at);
        """,
    ),
    (
        "posts: words",
        """
        -- Words of a post's full content, counted when parsed, for its reading time; NULL when
        -- the feed carries only a summary (and for posts stored before this).
        ALTER TABLE posts ADD COLUMN words INTEGER;
        """,
    ),
    (
        "posts: thumbnail; images",
        """
        -- The image a post's feed names (media:thumbnail, media:content, an image enclosure or
        -- the content's first <img>) and its alt text: a URL only, fetched when the curator
        -- sets newsletter.images: cached.
        ALTER TABLE posts ADD COLUMN image TEXT;
        ALTER TABLE posts ADD COLUMN image_alt TEXT;
        -- Thumbnails fetched, resized and re-encoded by digest (digest/images.py), served at
        -- /images/<key>.<ext>, so readers' mail clients never contact the blogs' hosts. One
        -- row per source URL (key: sha256 of it); a failed fetch keeps its reason and no
        -- bytes, so it is not tried again on every draft.
        CREATE TABLE images (
            key          TEXT PRIMARY KEY,
            url          TEXT NOT NULL,
            content_type TEXT,            -- image/jpeg | image/png; NULL when it failed
            width        INTEGER,         -- pixels stored (2x the width shown)
            height       INTEGER,
            data         BLOB,
            error        TEXT,            -- why it was skipped, for the curator's feed health
            fetched_at   TEXT NOT NULL
        );
        """,
    ),
    (
        "feedback events",
        """
        -- Bounces and complaints reported after the 250 (digest.feedback): provider webhooks and
        -- the DSN and ARF reports of `digest bounces`. One row per (source, event id), so a
        -- retried webhook or a report read twice is applied once.
        CREATE TABLE feedback_events (
            source        TEXT NOT NULL,      -- ses | postmark | mailgun | sendgrid | dsn | arf
            event_id      TEXT NOT NULL,
            kind          TEXT NOT NULL,      -- hard | soft | policy | complaint
            recipient     TEXT,
            message_id    TEXT,               -- the original Message-ID, when known
            issue         INTEGER,            -- the delivery it was matched to, if any
            subscriber_id INTEGER,
            outcome       TEXT NOT NULL,      -- what it did (suppressed, unsubscribed, ...)
            detail        TEXT NOT NULL,
            occurred_at   TEXT,
            received_at   TEXT NOT NULL,
            PRIMARY KEY (source, event_id)
        );
        CREATE INDEX feedback_events_received ON feedback_events (received_at);
        -- A provider that reports only the address (Postmark): its latest delivery.
        CREATE INDEX deliveries_email ON deliveries (email, issue);
        -- Mailgun's signature tokens already seen, so a captured request cannot be replayed
        -- within the freshness window (older ones are refused by their timestamp anyway).
        CREATE TABLE webhook_nonces (
            source  TEXT NOT NULL,
            nonce   TEXT NOT NULL,
            seen_at TEXT NOT NULL,
            PRIMARY KEY (source, nonce)
        );
        """,
    ),
    (
        "rate_limits",
        """
        -- The web app's abuse limits (digest/web/ratelimit.py), shared by every `digest serve`
        -- on the database: per limiter and key, the hits of the current fixed window and of
        -- the one before. The key is a keyed hash of the IP or mailbox, never the clear text.
        CREATE TABLE rate_limits (
            limiter   TEXT NOT NULL,     -- ip | address
            subject   TEXT NOT NULL,     -- BLAKE2b of the key, keyed by the form secret
            window_no INTEGER NOT NULL,  -- unix time // the limiter's window
            hits      INTEGER NOT NULL,  -- in that window, refused ones too
            previous  INTEGER NOT NULL,  -- in the window before it
            PRIMARY KEY (limiter, subject)
        );
        CREATE INDEX rate_limits_window ON rate_limits (limiter, window_no);
        """,
    ),
    (
        "deliveries: leases",
        """
        -- Senders on several machines (PostgreSQL) claim rows for a while: who holds a row
        -- 'sending' (or 'deferred' for a retry within its run), and until when. A row whose
        -- lease ran out belongs to the next claimer: its worker died.
        ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;
        ALTER TABLE deliveries ADD COLUMN lease_until TEXT;
        CREATE INDEX deliveries_claimed ON deliveries (claimed_by) WHERE claimed_by IS NOT NULL;
        """,
    ),
    (
        "postgresql: delivery row ids, audience changes",
        {
            # SQLite has both already: every table's rowid, and PRAGMA data_version.
            "sqlite": "",
            "postgresql": """
        ALTER TABLE deliveries ADD COLUMN rowid BIGINT GENERATED BY DEFAULT AS IDENTITY UNIQUE;
        -- Moves whenever someone leaves: a sender re-checks the rows it holds (dialect.changes).
        CREATE SEQUENCE audience_changes;
        CREATE FUNCTION audience_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM nextval('audience_changes'); RETURN NULL; END $$;
        CREATE TRIGGER subscribers_changed AFTER UPDATE OF status OR DELETE ON subscribers
            FOR EACH STATEMENT EXECUTE FUNCTION audience_changed();
        CREATE TRIGGER suppressions_changed AFTER INSERT ON suppressions
            FOR EACH STATEMENT EXECUTE FUNCTION audience_changed();
        """,
        },
    ),
    (
        "postgresql: the claim's index in row order",
        {
            # SQLite's index on (issue, status) holds each row's rowid, in order, already.
            "sqlite": "",
            "postgresql": """
        -- deliveries.claim() takes an issue's oldest queued rows: in this index's order,
        -- instead of a walk of the row ids past every row already sent, at every claim.
        CREATE INDEX deliveries_queue ON deliveries (issue, status, rowid);
        DROP INDEX deliveries_status;
        """,
        },
    ),
    (
        "readers and the open web",
        """
        -- Cadence: weekly issues go to 'weekly' readers, the monthly edition ("The month in
        -- TITLE") to 'monthly' ones. A confirmation carries the cadence it asked for.
        ALTER TABLE subscribers ADD COLUMN cadence TEXT NOT NULL DEFAULT 'weekly';
        ALTER TABLE confirmations ADD COLUMN cadence TEXT;
        -- Editions in the one ledger: weekly issues are numbered 1, 2, 3 ...; a monthly edition
        -- is keyed YYYYMM (202611) and names its month, so `deliveries` serves both.
        ALTER TABLE issues ADD COLUMN kind TEXT NOT NULL DEFAULT 'weekly';   -- weekly | monthly
        ALTER TABLE issues ADD COLUMN month TEXT;                           -- YYYY-MM, monthly

        -- Click counts (newsletter.click_counts): each link of an edition is BASE/r/<issue>/<n>,
        -- the same for every recipient; the target is stored so the redirect goes only there.
        CREATE TABLE links (
            issue   INTEGER NOT NULL,
            n       INTEGER NOT NULL,
            url     TEXT NOT NULL,
            post_id TEXT,                 -- the post it leads to, if any
            blog    TEXT,                 -- the blog it belongs to, if any
            PRIMARY KEY (issue, n)
        );
        -- Counts only: no time, address, IP or agent of a click is kept.
        CREATE TABLE clicks (
            issue INTEGER NOT NULL,
            n     INTEGER NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (issue, n)
        );

        -- Webmentions (newsletter.webmentions): one row per (issue, featured post), never sent
        -- twice; 429 and 5xx are retried on the next run.
        CREATE TABLE webmentions (
            issue        INTEGER NOT NULL,
            target       TEXT NOT NULL,      -- the featured post's URL
            source       TEXT NOT NULL,      -- the archive page that mentions it
            endpoint     TEXT,               -- as discovered; NULL: none found (yet)
            status       TEXT NOT NULL,      -- pending | sent | none | failed | retry
            http_status  INTEGER,
            detail       TEXT,               -- what happened, in words
            attempts     INTEGER NOT NULL DEFAULT 0,
            updated_at   TEXT NOT NULL,
            PRIMARY KEY (issue, target)
        );

        -- Mail received for blogs that publish by email (digest/inbound): what became a post,
        -- what was quarantined and why, and newsletters' own opt-in confirmations.
        CREATE TABLE inbound_mail (
            id          TEXT PRIMARY KEY,    -- sha256 of the Message-ID (else of the bytes)
            blog        TEXT,                -- the blog it was addressed to or sent by, if known
            sender      TEXT,
            subject     TEXT,
            received_at TEXT NOT NULL,
            status      TEXT NOT NULL,       -- post | quarantined | confirmation
            reason      TEXT,                -- why quarantined, in words
            post_id     TEXT,
            confirm_url TEXT,                -- a confirmation's link, for the curator
            html        TEXT                 -- the archived copy (sanitised), when served by digest
        );
        CREATE INDEX inbound_mail_blog ON inbound_mail (blog, received_at);

        -- excerpt: page: the lede of a post's own page, fetched once (digest/feeds/page.py).
        CREATE TABLE page_excerpts (
            url        TEXT PRIMARY KEY,
            excerpt    TEXT,                 -- NULL: it failed; error says why
            error      TEXT,
            fetched_at TEXT NOT NULL
        );
        """,
    ),
]
