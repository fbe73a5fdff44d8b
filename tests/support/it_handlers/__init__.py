"""Handlers used by the integration tests (run in-process and in worker subprocesses).

They write a ledger to Redis (``ledger:<queue>`` list in the same Redis, under a test-only key)
so tests count starts and finishes outside the system under test.
"""
