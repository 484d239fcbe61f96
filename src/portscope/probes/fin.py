"""FIN scan (``-sF``): a lone FIN."""

from portscope.probes._stealth import stealth_scan

SCAN_TYPE = stealth_scan("fin", "F", 0x01, "FIN")
