"""Public test helpers for portscope and its users.

``portscope.testing.lab``      network-namespace test hosts (root only)
``portscope.testing.listener`` the many-port TCP/UDP server those hosts run
``portscope.testing.nmap``     run nmap and read its XML, to compare against
``portscope.testing.postgres`` throw-away PostgreSQL databases for tests
``portscope.testing.tiers``    skip-or-fail policy of the test tiers (CI=true fails)
"""
