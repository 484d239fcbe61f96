"""scapy is a test oracle only: the conftest guard stops it from resolving MAC addresses
(an ``Ether()`` without ``dst`` would send ARP/ND on the machine's real link) or sending."""

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether


@pytest.mark.parametrize("l3", [IP(dst="198.18.0.2"), IPv6(dst="2001:db8::2")])
def test_ether_without_dst_is_refused(l3: IP | IPv6) -> None:
    with pytest.raises(AssertionError, match="resolve a MAC"):
        bytes(Ether() / l3 / TCP())


def test_ether_with_dst_builds() -> None:
    frame = bytes(Ether(dst="02:00:00:00:00:01", src="02:00:00:00:00:02") / IP(dst="198.18.0.2"))
    assert frame[:6] == bytes.fromhex("020000000001")
