"""The Go main of the local mothership's CoreDNS: upstream's server with few plugins.

Upstream's main imports every plugin, cloud DNS providers (AWS, Azure, Google) among
them, so a build downloads and compiles their SDKs. Cluster DNS needs a handful: this
main imports those and sets the directive list to them, so the build pulls a fraction of
the dependencies and the binary holds nothing the Corefile cannot use.
"""

from __future__ import annotations

MODULE = "github.com/coredns/coredns"

# The plugins kept, in upstream's execution order (core/dnsserver/zdirectives.go): a
# plugin sees a query before every plugin after it, so the order is not ours to choose.
# whoami is in because core/dnsserver imports it for its default (no Corefile) config;
# prometheus because tenants run this build as their CoreDNS, whose Corefile serves metrics.
PLUGINS = (
    "reload",
    "ready",
    "health",
    "prometheus",
    "errors",
    "log",
    "loadbalance",
    "cache",
    "kubernetes",
    "loop",
    "forward",
    "whoami",
)

# Directives whose plugin lives in a package of another name.
PACKAGE_DIRS = {"prometheus": "metrics"}

_TEMPLATE = """\
// Command coredns is CoreDNS built with only the plugins the local mothership's cluster
// DNS uses. Written by mothership (mothership/testenv/coredns_main.py); do not edit.
package main

import (
\t"github.com/coredns/coredns/core/dnsserver"
\t"github.com/coredns/coredns/coremain"

{imports}
)

// The execution order of the plugins above, as upstream orders them.
var directives = []string{{
{directives}
}}

func init() {{
\t// Read when a Corefile is parsed, so replacing it before main runs is enough.
\tdnsserver.Directives = directives
}}

func main() {{
\tcoremain.Run()
}}
"""


def main_source(plugins: tuple[str, ...] = PLUGINS) -> str:
    """The main.go of the wrapper module that builds our coredns binary."""
    imports = "\n".join(
        f'\t_ "{MODULE}/plugin/{PACKAGE_DIRS.get(p, p)}"'
        for p in sorted(plugins, key=lambda p: PACKAGE_DIRS.get(p, p))
    )
    directives = "\n".join(f'\t"{p}",' for p in plugins)
    return _TEMPLATE.format(imports=imports, directives=directives)
