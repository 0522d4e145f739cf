"""One module per merge method; `base.py` holds what they share (roles, dtypes, errors)."""
