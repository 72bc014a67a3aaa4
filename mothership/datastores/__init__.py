"""Per-tenant databases on shared SQL servers (the DataStore kind's backends).

A DataStore names a PostgreSQL or MySQL/MariaDB server and an admin login on it; every
Cluster that uses it gets a database and a user of its own, and kine gets a URL for them.

- :mod:`.sql_tenant` is pure: tenant names, passwords, endpoints, kine URLs;
- :mod:`.sql_admin` talks to the server (blocking; the operator calls it from a thread).

Nothing is imported here, so that importing the pure half does not load the drivers.
"""
