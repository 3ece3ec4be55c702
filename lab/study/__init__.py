"""The study: methods x seeds from a spec (spec.py), tables pooled over seeds (tables.py), plots
(plots.py) and the results page (page.py)."""
