"""Helpers shared by tests (rule 17: never imported from another test file)."""
