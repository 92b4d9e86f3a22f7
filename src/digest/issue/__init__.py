"""The next issue: what goes in (select), and the curator's editable draft (draft, validate)."""
