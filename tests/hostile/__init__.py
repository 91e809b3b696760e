"""Bad requests for tests/test_hostile.py: the corpus is corpus.CASES."""
