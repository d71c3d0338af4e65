"""`curate`: raw text -> a curated, domain-weighted corpus (see DESIGN.md for the corpus contract)."""
