"""Newsletters as sources: mail from a blog's listed senders, DKIM-verified, becomes its posts."""
