"""Gathering: fetch every blog's feed politely and record its posts as plain text.

Modules, in the order data flows through them:

- http.py      the one seam to httpx: conditional GET, redirects, time limit, body cap
- parse.py     the one seam to feedparser, plus JSON Feed, into plain Entry values
- expat.py     the SAX driver feedparser runs on (Expat with buffered text)
- pool.py      parsing in worker processes once a run has many bodies
- text.py      plain-text excerpts out of feed HTML (no feed HTML is kept anywhere)
- discover.py  the feed of a blog known only by its homepage
- record.py    entries -> posts: identity, GUID rewrites, back catalogue, duplicates
- gather.py    all feeds concurrently, within limits, with backoff and store updates
- opml.py      OPML import and export (what every feed reader speaks)
"""
