"""Xmas scan (``-sX``): FIN, PSH and URG, "lit up like a Christmas tree"."""

from portscope.probes._stealth import stealth_scan

SCAN_TYPE = stealth_scan("xmas", "X", 0x29, "Xmas")
