"""The local view (this host's listening sockets, like netstat/ss) and its comparison with
a scan of the host from another vantage point.

Pure code only: :mod:`~portscope.local.procnet` and :mod:`~portscope.local.sockdiag` parse
the kernel's socket tables, :func:`~portscope.local.compare.compare` classifies ports,
:mod:`~portscope.local.advice` says what each class means and what to do (English and
Japanese). Collecting is I/O and lives in :mod:`portscope.engine.localsockets`.
"""
