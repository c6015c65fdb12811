"""Adapters over the private APIs of the libraries the pipelines use: one module per library,
each stating the version it was checked on and what breaks if the library changes
(tests/test_private_apis.py). Great Expectations' is `transforms/quality/gx_private.py`."""
