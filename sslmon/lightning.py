"""``from sslmon.lightning import SSLMonitor``: the Lightning callback (extra ``sslmon[lightning]``).

The implementation lives in :mod:`sslmon.integrations.lightning`.
"""

from sslmon.integrations.lightning import SSLMonitor

__all__ = ["SSLMonitor"]
