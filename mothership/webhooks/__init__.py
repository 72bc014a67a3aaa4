"""Admission and conversion webhooks for the k0smotron.io API (and mothership.io DataStores).

The CRD schema can check types and enums, but not what depends on other fields, on the
previous object (version skew, NATS scaling) or on other Clusters (node port clashes), and
CRD defaults cannot pick a k0s version. These webhooks close that gap and serve conversion
between v1beta1 and v1beta2.

- :mod:`.defaults` and :mod:`.validate` are pure rule sets, testable without a server
  (:mod:`.validate_datastore` for DataStores and a Cluster's ``dataStoreRef``);
- :mod:`.server` speaks AdmissionReview/ConversionReview over HTTPS (:func:`.server.serve`);
- :mod:`.tls` keeps the self-managed serving certificate;
- :mod:`.registration` tells the API server about all of it (:func:`.registration.register`).
"""

from mothership.webhooks.registration import ServiceRef, register, unregister
from mothership.webhooks.server import Runner, cluster_lister, serve
from mothership.webhooks.tls import WebhookTLS, webhook_tls

__all__ = [
    "Runner",
    "ServiceRef",
    "WebhookTLS",
    "cluster_lister",
    "register",
    "serve",
    "unregister",
    "webhook_tls",
]
