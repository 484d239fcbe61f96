"""NULL scan (``-sN``): no flags at all."""

from portscope.probes._stealth import stealth_scan

SCAN_TYPE = stealth_scan("null", "N", 0x00, "NULL")
