"""The Go main of the local mothership's cert-manager: controllers and CA injector in one.

Cluster API's releases (and clusterctl) install every provider with cert-manager: a
Certificate per webhook Service and the CA injector filling in ``caBundle`` of CRD
conversions and webhook configurations. Upstream's commands live in modules of their own
that the proxy does not serve; the core module is served and its public packages hold
everything they start. This main starts what a mothership needs and nothing more: the
issuer and certificate controllers for self-signed and CA issuers (no ACME, no cloud
issuers, so none of their SDKs) and the CA injector. cert-manager's own webhook is not
run: it only validates cert-manager's objects, which the API server's CRD schemas check
too.
"""

from __future__ import annotations

MODULE = "github.com/cert-manager/cert-manager"

# What `--version` prints is set at link time (-X main.Version=...).
VERSION_VAR = "main.Version"

MAIN_SOURCE = """\
// Command cert-manager is cert-manager's certificate and issuer controllers (self-signed
// and CA issuers) and its CA injector in one process. Written by mothership
// (mothership/testenv/certmanager_main.py); do not edit.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	controllerpkg "github.com/cert-manager/cert-manager/pkg/controller"
	"github.com/cert-manager/cert-manager/pkg/controller/cainjector"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	_ "github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	_ "github.com/cert-manager/cert-manager/pkg/controller/issuers"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

var controllers = []string{
	"issuers", "clusterissuers",
	"certificates-trigger", "certificates-issuing", "certificates-key-manager",
	"certificates-request-manager", "certificates-readiness", "certificates-revision-manager",
	"certificaterequests-approver",
	"certificaterequests-issuer-selfsigned", "certificaterequests-issuer-ca",
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\\n", args...)
	os.Exit(1)
}

func main() {
	// A flag set of our own: controller-runtime registers --kubeconfig on the global one.
	flags := flag.NewFlagSet("cert-manager", flag.ExitOnError)
	kubeconfig := flags.String("kubeconfig", "", "kubeconfig of the cluster")
	namespace := flags.String("cluster-resource-namespace", "cert-manager",
		"namespace of ClusterIssuer secrets")
	health := flags.String("health-addr", "0", "address of /readyz (0: none)")
	version := flags.Bool("version", false, "print the version and exit")
	_ = flags.Parse(os.Args[1:])
	if *version {
		fmt.Println("cert-manager " + Version)
		return
	}
	ctrl.SetLogger(klog.NewKlogr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errs := make(chan error, len(controllers)+1)
	runControllers(ctx, *kubeconfig, *namespace, errs)
	go func() { errs <- runInjector(ctx, *kubeconfig, *health) }()
	select {
	case <-ctx.Done():
	case err := <-errs:
		if err != nil {
			fail("%v", err)
		}
	}
}

// Version is set by the build (-X main.Version=...).
var Version = "unknown"

func runControllers(ctx context.Context, kubeconfig, namespace string, errs chan<- error) {
	opts := controllerpkg.ContextOptions{
		Kubeconfig: kubeconfig, KubernetesAPIQPS: 20, KubernetesAPIBurst: 50,
	}
	opts.ClusterResourceNamespace = namespace
	factory, err := controllerpkg.NewContextFactory(ctx, opts)
	if err != nil {
		fail("%v", err)
	}
	known := controllerpkg.Known()
	var started []controllerpkg.Interface
	for _, name := range controllers {
		construct, ok := known[name]
		if !ok {
			fail("no controller %q", name)
		}
		c, err := construct(factory)
		if err != nil {
			fail("%s: %v", name, err)
		}
		started = append(started, c)
	}
	base, err := factory.Build()
	if err != nil {
		fail("%v", err)
	}
	base.KubeSharedInformerFactory.Start(ctx.Done())
	base.SharedInformerFactory.Start(ctx.Done())
	for _, c := range started {
		go func(c controllerpkg.Interface) { errs <- c.Run(2, ctx) }(c)
	}
}

// runInjector runs the CA injector; its manager serves /readyz once it runs, which is when
// the controllers above have started too.
func runInjector(ctx context.Context, kubeconfig, health string) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	// The injector names its field manager after the user agent (as upstream's command sets it).
	cfg.UserAgent = "cert-manager-cainjector/" + Version
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		clientgoscheme.AddToScheme, apiextv1.AddToScheme, apiregv1.AddToScheme, cmapi.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			return err
		}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: health,
	})
	if err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := cainjector.RegisterAllInjectors(ctx, mgr, cainjector.SetupOptions{
		EnableCertificatesDataSource: true,
		EnabledReconcilersFor: map[string]bool{
			"mutatingwebhookconfiguration": true, "validatingwebhookconfiguration": true,
			"apiservice": true, "customresourcedefinition": true,
		},
	}); err != nil {
		return err
	}
	return mgr.Start(ctx)
}
"""


def main_source() -> str:
    return MAIN_SOURCE
