"""A tiny validating admission webhook, run as a pod on a tenant's workers.

It exists to prove the path a tenant's own webhooks take: the tenant API server calls a
Service whose pods run on workers behind NAT, and only the Konnectivity tunnel gets it
there. No webhook server of an upstream project builds here without a pile of modules,
so this one is a standard-library Go program (built like the pause binary) in an image
of its own that the registry mirror serves to workers.

The rule it enforces is deliberately trivial: an object labelled `webhook-demo/deny`
is refused with a message naming the pod that refused it (so a test sees which pod
answered), everything else is allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from mothership.testenv.images import build_go_command

# Under a registry the join mirrors (render/node_join.py MIRRORED_REGISTRIES), so a
# worker pulls it through the mirror; it exists only in the local mirror.
IMAGE = "ghcr.io/mothership-dev/webhook-demo:v1"
BINARY = "/webhook-demo"
PORT = 8443
PATH = "/validate"
DENY_LABEL = "webhook-demo/deny"

GO_SOURCE = """\
// Command webhook-demo is a validating admission webhook for tests and demos: it refuses
// objects labelled webhook-demo/deny and allows the rest. Written by mothership
// (mothership/testenv/webhook_demo.py); do not edit.
package main

import (
\t"encoding/json"
\t"flag"
\t"fmt"
\t"log"
\t"net/http"
\t"os"
)

type review struct {
\tAPIVersion string    `json:"apiVersion"`
\tKind       string    `json:"kind"`
\tRequest    *request  `json:"request,omitempty"`
\tResponse   *response `json:"response,omitempty"`
}

type request struct {
\tUID    string          `json:"uid"`
\tObject json.RawMessage `json:"object"`
}

type response struct {
\tUID     string  `json:"uid"`
\tAllowed bool    `json:"allowed"`
\tResult  *status `json:"status,omitempty"`
}

type status struct {
\tCode    int    `json:"code"`
\tMessage string `json:"message"`
}

type object struct {
\tMetadata struct {
\t\tLabels map[string]string `json:"labels"`
\t} `json:"metadata"`
}

func main() {
\tlisten := flag.String("listen", ":@PORT@", "address to serve HTTPS on")
\tcert := flag.String("tls-cert", "/tls/tls.crt", "serving certificate (PEM)")
\tkey := flag.String("tls-key", "/tls/tls.key", "serving key (PEM)")
\tflag.Parse()
\thost, _ := os.Hostname()

\thttp.HandleFunc("@PATH@", func(w http.ResponseWriter, r *http.Request) {
\t\tvar in review
\t\tif err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Request == nil {
\t\t\thttp.Error(w, "expected an AdmissionReview with a request", http.StatusBadRequest)
\t\t\treturn
\t\t}
\t\tvar obj object
\t\t_ = json.Unmarshal(in.Request.Object, &obj)
\t\tout := review{APIVersion: in.APIVersion, Kind: in.Kind,
\t\t\tResponse: &response{UID: in.Request.UID, Allowed: true}}
\t\tif reason, deny := obj.Metadata.Labels["@DENY@"]; deny {
\t\t\tout.Response.Allowed = false
\t\t\tout.Response.Result = &status{Code: http.StatusForbidden,
\t\t\t\tMessage: fmt.Sprintf("denied by webhook-demo on %s: %s", host, reason)}
\t\t}
\t\tlog.Printf("%s uid=%s allowed=%v", r.URL.Path, in.Request.UID, out.Response.Allowed)
\t\tw.Header().Set("Content-Type", "application/json")
\t\t_ = json.NewEncoder(w).Encode(out)
\t})
\thttp.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
\t\t_, _ = w.Write([]byte("ok"))
\t})
\tlog.Printf("serving on %s as %s", *listen, host)
\tlog.Fatal(http.ListenAndServeTLS(*listen, *cert, *key, nil))
}
"""


def go_source() -> str:
    return (
        GO_SOURCE.replace("@PORT@", str(PORT)).replace("@PATH@", PATH).replace("@DENY@", DENY_LABEL)
    )


def build(out_dir: Path, env: Mapping[str, str]) -> Path:
    """The webhook-demo binary in out_dir, rebuilt only when its source changed."""
    return build_go_command("webhook-demo", go_source(), out_dir, env)
