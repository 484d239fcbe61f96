"""Record MariaDB, Samba, memcached and OpenLDAP answers to portscope's dialogs as replay
fixtures (the companion of record.py, same format, same replay test).

Run as root (it starts the daemons of portscope.testing.daemons in lab hosts)::

    .venv/bin/python tests/data/services/record_more.py

tests/unit/test_service_replays.py replays every JSON file here; the facts these daemons
taught us (MariaDB's refusal, Samba's NativeLanMan over SMBv1, OpenLDAP's "require authc"
refusal) are asserted in tests/unit/test_service_replays_more.py.
"""

from __future__ import annotations

import asyncio

from record import record, save  # type: ignore[import-not-found]  # the sibling script

from portscope.engine.services import ServiceEngine, ServiceOptions
from portscope.model import Host, HostStatus
from portscope.testing import daemons as D
from portscope.testing.lab import Lab

# (host: 0 = databases and directories, 1 = Samba default, 2 = Samba with SMBv1) ->
# (fixture name, protocol, port, transport, implicit TLS)
CASES = {
    0: [("mariadb", "mysql", 3306, "tcp", False),
        ("mariadb-refused", "mysql", 3307, "tcp", False),
        ("memcached", "memcache", 11211, "tcp", False),
        ("memcached-udp", "memcache", 11211, "udp", False),
        ("memcached-auth", "memcache", 11212, "tcp", False),
        ("openldap", "ldap", 389, "tcp", False),
        ("openldap-authc", "ldap", 390, "tcp", False)],
    1: [("samba", "microsoft-ds", 445, "tcp", False),
        ("samba-netbios-ns", "netbios-ns", 137, "udp", False)],
    2: [("samba-smbv1", "microsoft-ds", 445, "tcp", False)],
}


def main() -> None:
    with Lab() as lab:
        hosts = [lab.add_host() for _ in CASES]
        daemons: list[D.Daemon] = []
        try:
            daemons += [D.start_mariadb(hosts[0]),
                        D.start_mariadb(hosts[0], port=3307, remote_user=None),
                        D.start_memcached(hosts[0], udp_port=11211),
                        D.start_memcached(hosts[0], port=11212, auth=("lab", "lab-secret")),
                        D.start_slapd(hosts[0]),
                        D.start_slapd(hosts[0], port=390, anonymous=False),
                        D.start_samba(hosts[1]),
                        D.start_samba(hosts[2], min_protocol="NT1", nmbd=False)]

            async def all_cases() -> list[dict[str, object]]:
                engine = ServiceEngine(ServiceOptions())
                out = []
                for index, cases in CASES.items():
                    model_host = Host(hosts[index].addr4, HostStatus.UP)
                    out += [await record(engine, model_host, *case) for case in cases]
                return out

            save(asyncio.run(all_cases()))
        finally:
            for d in daemons:
                d.stop()


if __name__ == "__main__":
    main()
