"""portscope: which ports of your hosts are open to whom, what answers there, how
dangerous that is and what to do about it, and what changed since last time."""

from portscope.errors import PortscopeError

__version__ = "0.1.0"

__all__ = ["PortscopeError", "__version__"]
