"""mothership.io/v1alpha1: DataStore, a database server shared by many hosted control planes.

A DataStore names a PostgreSQL, MySQL or etcd server and a Secret with credentials that may
create databases and users. A Cluster points at it by name: ``spec.storage.kine.dataStoreRef``
for the SQL drivers, ``spec.storage.etcd.dataStoreRef`` for etcd. The operator then creates a
database and a user for that Cluster (etcd: a user, a role limited to the Cluster's key prefix
and a client certificate), writes the tenant's credentials into the Secret
``<cluster>-datastore`` in the Cluster's namespace, and kine (or, on etcd, the API server)
connects with them. Not in k0smotron: there a Cluster carries a kine data source URL written
by hand.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, ClassVar, Literal, get_args

from pydantic import Field

from mothership.api.base import CRDInfo, KubeModel, PrinterColumn, TopLevel, VersionInfo
from mothership.api.k0smotron.v1beta2 import Condition

GROUP = "mothership.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "DataStore"
PLURAL = "datastores"
DATASTORE_CRD_NAME = f"{PLURAL}.{GROUP}"

CONDITION_REACHABLE = "Reachable"
"""The operator could log in to the data store with the admin credentials."""
IN_USE_FINALIZER = "mothership.io/datastore-in-use"
"""On every DataStore the operator has seen; removed on deletion only once no Cluster uses it."""
DATASTORE_SECRET_SUFFIX = "-datastore"
"""The tenant's credentials Secret, in the Cluster's namespace, is ``<cluster>-datastore``."""

Driver = Literal["postgresql", "mysql", "etcd"]
DRIVERS: tuple[str, ...] = get_args(Driver)
SQL_DRIVERS: tuple[str, ...] = ("postgresql", "mysql")
DEFAULT_PORTS: dict[str, int] = {"postgresql": 5432, "mysql": 3306, "etcd": 2379}
"""Port of an endpoint written as a bare host, by driver."""

DEFAULT_USERNAME_KEY = "username"
DEFAULT_PASSWORD_KEY = "password"
ETCD_ENDPOINTS_KEY = "endpoints"
"""Key of an etcd tenant Secret: the etcd client URLs, comma-separated (--etcd-servers)."""
ETCD_PREFIX_KEY = "prefix"
"""Key of an etcd tenant Secret: the tenant's key prefix (--etcd-prefix)."""
ETCD_CLIENT_CERT_KEY = "tls.crt"
"""Key of an etcd tenant Secret: the tenant's client certificate (CN = its etcd user)."""
ETCD_CLIENT_KEY_KEY = "tls.key"
"""Key of an etcd tenant Secret: that certificate's private key."""
TENANT_CA_DIR = "/etc/mothership/datastore"
"""Where a control-plane pod finds the DataStore's CA (ca.crt) when the DataStore has TLS."""
TLS_CA_CERT_KEY = "ca.crt"
"""Key of the TLS Secret: the CA certificate the data store's server certificate is signed by."""
TLS_CA_KEY_KEY = "ca.key"
"""Key of the TLS Secret (etcd): the CA's private key, for the tenants' client certificates."""


def tenant_secret_name(cluster_name: str) -> str:
    """Name of the Secret with a Cluster's own database credentials (its namespace)."""
    return f"{cluster_name}{DATASTORE_SECRET_SUFFIX}"


# --- endpoints ----------------------------------------------------------------------------------

# DNS labels, plus "_" as in container runtimes' service names (resolvers accept it).
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOST_NAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")


def split_endpoint(endpoint: str, driver: str) -> tuple[str, int]:
    """(host, port) of an endpoint: ``host``, ``host:port``, ``[v6]``, ``[v6]:port`` or a bare
    IPv6 address; a missing port is the driver's default (:data:`DEFAULT_PORTS`).

    The host comes back without brackets. Raises ValueError saying what is wrong (a scheme,
    a path, spaces, a port that is not one, a host that is not a DNS name or IP address,
    an IPv6 zone).
    """
    default_port = DEFAULT_PORTS.get(driver, 0)
    if not endpoint:
        raise ValueError("is empty")
    if any(c.isspace() for c in endpoint):
        raise ValueError("contains spaces")
    if "://" in endpoint:
        raise ValueError("has a scheme")
    if any(c in endpoint for c in "/?#@"):
        raise ValueError("is not a bare address (it has a path, query or user part)")
    if "%" in endpoint:
        raise ValueError("has an IPv6 zone (%...), which only means something on one host")
    port_text: str | None = None
    if endpoint.startswith("["):
        host, bracket, rest = endpoint[1:].partition("]")
        if not bracket:
            raise ValueError("has an unclosed [")
        if not _is_ipv6(host):
            raise ValueError("has something other than an IPv6 address in [ ]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError("has text after ]")
            port_text = rest[1:]
    elif endpoint.count(":") > 1:
        if not _is_ipv6(endpoint):
            raise ValueError("is not a host:port (write IPv6 addresses as [address]:port)")
        host = endpoint
    else:
        host, colon, after = endpoint.partition(":")
        port_text = after if colon else None
        if not host:
            raise ValueError("has no host")
        if not (_is_ip(host) or (len(host) <= 253 and _HOST_NAME.match(host))):
            raise ValueError(f'has host "{host}", which is not a DNS name or an IP address')
    if port_text is None:
        return host, default_port
    if not (port_text.isascii() and port_text.isdigit()):
        raise ValueError(f'has port "{port_text}", which is not a number')
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"has port {port}, outside 1-65535")
    return host, port


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


# --- DataStore ----------------------------------------------------------------------------------


class AdminSecretRef(KubeModel):
    """A Secret with credentials allowed to create databases and users on the data store."""

    name: str = Field(min_length=1, max_length=253, description="Name of the Secret.")
    namespace: str = Field(
        min_length=1,
        max_length=63,
        description=(
            "Namespace of the Secret (a DataStore has none of its own), e.g. the operator's. "
            "The operator must be allowed to read Secrets there."
        ),
    )
    username_key: str = Field(
        default=DEFAULT_USERNAME_KEY,
        alias="usernameKey",
        min_length=1,
        description="Key of the Secret holding the admin user name.",
    )
    password_key: str = Field(
        default=DEFAULT_PASSWORD_KEY,
        alias="passwordKey",
        min_length=1,
        description="Key of the Secret holding the admin password.",
    )


class TLSSecretRef(KubeModel):
    """A Secret with the certificate authority of the data store's TLS."""

    name: str = Field(min_length=1, max_length=253, description="Name of the Secret.")
    namespace: str = Field(
        min_length=1,
        max_length=63,
        description="Namespace of the Secret; the operator must be allowed to read it.",
    )


class DataStoreTLS(KubeModel):
    """How to trust the data store's server, and (etcd) how to make its clients' certificates."""

    secret_ref: TLSSecretRef = Field(
        alias="secretRef",
        description=(
            f"Secret with {TLS_CA_CERT_KEY}: the CA that signed the server's certificate (the "
            "operator and the control planes verify the server with it); for etcd also "
            f"{TLS_CA_KEY_KEY}: the key of the CA etcd trusts for client certificates "
            "(--trusted-ca-file), with which the operator issues each tenant's certificate."
        ),
    )


class DataStoreSpec(KubeModel):
    """A database server that hosts the data of many Clusters, one database (or etcd key
    prefix) each."""

    driver: Driver = Field(
        description=(
            "Kind of database server: postgresql, mysql or etcd. Fixed at creation (the "
            "tenants' databases live in it)."
        )
    )
    endpoints: list[str] = Field(
        min_length=1,
        description=(
            "Addresses of the server, each host or host:port (port: 5432 for postgresql, "
            "3306 for mysql, 2379 for etcd when left out; IPv6 as [address]:port), without "
            "scheme (etcd is always spoken to over TLS). Both the "
            "operator and the control plane pods connect to them, so they must be reachable "
            "from the pods' network."
        ),
    )
    admin_secret_ref: AdminSecretRef = Field(
        alias="adminSecretRef",
        description=(
            "Credentials the operator creates and drops tenant databases and users with "
            "(etcd: a user with the root role; auth must be enabled on the etcd cluster)."
        ),
    )
    tls: DataStoreTLS | None = Field(
        default=None,
        description=(
            "TLS of the server. Required for etcd, whose tenants authenticate with client "
            "certificates. For postgresql and mysql: the operator and kine connect with TLS "
            "and verify the server's certificate and host name against ca.crt (mysql with "
            "the kubernetes distribution only: k0s cannot give its kine a CA)."
        ),
    )

    def addresses(self) -> list[tuple[str, int]]:
        """(host, port) of every endpoint, default ports filled in; ValueError on a bad one."""
        return [split_endpoint(e, self.driver) for e in self.endpoints]


class DataStoreStatus(KubeModel):
    """What the operator observed of the data store and who uses it."""

    tenants: list[str] | None = Field(
        default=None, description="The Clusters using this data store, as namespace/name."
    )
    tenant_count: int | None = Field(
        default=None, alias="tenantCount", ge=0, description="How many Clusters use it."
    )
    conditions: list[Condition] | None = Field(
        default=None,
        description=(
            f"Current conditions; {CONDITION_REACHABLE} says whether the operator could log in "
            "with the admin credentials."
        ),
    )
    observed_generation: int | None = Field(
        default=None,
        alias="observedGeneration",
        description="metadata.generation this status describes.",
    )


DATASTORE_PRINTER_COLUMNS = (
    PrinterColumn("Driver", ".spec.driver", "string", "Kind of database server."),
    PrinterColumn("Endpoint", ".spec.endpoints[0]", "string", "First address of the server."),
    PrinterColumn("Tenants", ".status.tenantCount", "integer", "Clusters using it."),
    PrinterColumn(
        "Reachable",
        f'.status.conditions[?(@.type=="{CONDITION_REACHABLE}")].status',
        "string",
        "Whether the operator could log in.",
    ),
    PrinterColumn("Age", ".metadata.creationTimestamp", "date"),
)

DATASTORE_CRD = CRDInfo(
    group=GROUP,
    kind=KIND,
    plural=PLURAL,
    singular="datastore",
    # Not "ds": that is DaemonSet's, and kubectl 1.29+ warns on every `kubectl get ds`
    # when a second resource claims it.
    short_names=("dstore",),
    scope="Cluster",
)


class DataStore(TopLevel):
    """A shared database server for hosted control planes (mothership.io/v1alpha1)."""

    CRD: ClassVar[CRDInfo] = DATASTORE_CRD
    VERSION: ClassVar[VersionInfo] = VersionInfo(
        name=VERSION, storage=True, extra_printer_columns=DATASTORE_PRINTER_COLUMNS
    )

    api_version: Literal["mothership.io/v1alpha1"] = Field(
        default="mothership.io/v1alpha1", alias="apiVersion", description="API group and version."
    )
    kind: Literal["DataStore"] = Field(default="DataStore", description="Object kind.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")
    spec: DataStoreSpec = Field(description="The database server and how to administer it.")
    status: DataStoreStatus | None = Field(default=None, description="Observed state.")
