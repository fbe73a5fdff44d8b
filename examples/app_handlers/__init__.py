"""Example handlers package used by the docs.

Every module in this package is imported when a worker starts (``--handlers app_handlers`` or
``CORRAL_HANDLERS=app_handlers``), and every function marked with ``@job_handler`` in it is
registered under its name.
"""
