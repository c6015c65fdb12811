"""Docs that are generated from code stay in step with it."""

from lake.docs import DOC, render


def test_data_contracts_doc_matches_the_declarations():
    text = DOC.read_text()
    assert render(text) == text, "docs/data-contracts.md is stale: run `make docs`"
