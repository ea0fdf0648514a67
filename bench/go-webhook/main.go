// The compiled yardstick: a controller-runtime mutating webhook doing a faithful subset of Lanes' pod mutation.
//
// Built the idiomatic controller-runtime way: a webhook.Server (TLS from CertDir, certificate watcher), an
// admission.Handler registered through webhook.Admission, the request decoded into a typed corev1.Pod by
// admission.Decoder, the pod mutated as a Go struct, and the answer computed with admission.PatchResponseFromRaw
// (a JSON diff of the original and the mutated pod), as CustomDefaulter-based webhooks do. HTTP/2 is turned off
// through TLSOpts as kubebuilder's scaffolding does by default, so the protocol matches Lanes (HTTP/1.1, TLS 1.2+).
//
// What is ported is listed in README.md beside this file.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

type podMutator struct {
	decoder admission.Decoder
}

func (m *podMutator) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Kind.Kind != "Pod" || req.Operation != "CREATE" {
		return admission.Allowed("not a pod create")
	}
	pod := &corev1.Pod{}
	if err := m.decoder.Decode(req, pod); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	namespace := req.Namespace
	if namespace == "" {
		namespace = pod.Namespace
	}
	if reason := skipReason(pod, namespace); reason != "" {
		return admission.Allowed(reason)
	}
	cfg, warnings := resolve(pod)
	if mutate(pod, cfg, &warnings) {
		return admission.Allowed("already-injected")
	}
	marshaled, err := jsonMarshal(pod)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	resp := admission.PatchResponseFromRaw(req.Object.Raw, marshaled)
	resp.Warnings = warnings
	return resp
}

func main() {
	host := flag.String("host", "127.0.0.1", "listen address")
	port := flag.Int("port", 9443, "listen port")
	certDir := flag.String("cert-dir", "", "directory with tls.crt and tls.key")
	flag.Parse()
	if *certDir == "" {
		fmt.Fprintln(os.Stderr, "go-webhook: -cert-dir is required")
		os.Exit(2)
	}
	// Per-request logging in controller-runtime's webhook is at V(5): off by default, so no logger output here.
	ctrl.SetLogger(logr.Discard())

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	server := webhook.NewServer(webhook.Options{
		Host:     *host,
		Port:     *port,
		CertDir:  *certDir,
		CertName: "tls.crt",
		KeyName:  "tls.key",
		TLSOpts: []func(*tls.Config){func(c *tls.Config) {
			c.NextProtos = []string{"http/1.1"} // kubebuilder's default: HTTP/2 disabled
			c.MinVersion = tls.VersionTLS12
		}},
	})
	server.Register("/mutate", &webhook.Admission{Handler: &podMutator{decoder: admission.NewDecoder(scheme)}})

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := server.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "go-webhook:", err)
		os.Exit(1)
	}
}
