"""Exchange I/O: ccxt live venues, recorded-data replay, simulated venues.

Implements the ports defined in ``trading.ports``. Never imports Django, ``apps`` or ``workers``.
"""
