"""Bad requests for tests/stack/test_hostile.py: the corpus is corpus.CASES."""
