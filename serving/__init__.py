"""The scoring service (FastAPI): raw transactions in, verdicts out.

It owns the HTTP API and its bodies, the champion model store (loaded aside, swapped atomically), the
online feature state, the logging of predictions and feedback, and the service's metrics. Imports only
``core``: never ``pipelines`` or ``monitoring``.
"""
