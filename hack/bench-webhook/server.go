package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/internal/gklibrary"
	"github.com/portcullis-dev/portcullis/internal/gklibrary/libengine"
	"github.com/portcullis-dev/portcullis/webhook"
)

// serverReady is what the server process prints, as one JSON line, once it
// serves.
type serverReady struct {
	Error       string `json:"error,omitempty"`
	Templates   int    `json:"templates"`
	Mutators    int    `json:"mutators"`
	Constraints int    `json:"constraints"`
	CA          string `json:"ca"` // PEM file
	LoadSeconds float64
}

// runServer is the process under test: the gatekeeper-library in an
// engine, served by webhook.NewAdmissionHandler on controller-runtime's
// webhook server (webhook.NewServer), as the manager serves /v1/admit,
// with Prometheus metrics, and pprof on its own port.
func runServer(ctx context.Context, c config) error {
	logger := zapLogger()
	ctrl.SetLogger(logger)
	begin := time.Now()
	var (
		eng                    *engine.Engine
		templates, constraints int
		err                    error
	)
	if c.mode == modeAdmit {
		eng, templates, constraints, err = loadLibrary(ctx, c.library, c.resultCacheSize, !c.celFirst)
		if err != nil {
			return report(serverReady{Error: err.Error()})
		}
	}
	dir, err := os.MkdirTemp("", "bench-webhook-certs-")
	if err != nil {
		return report(serverReady{Error: err.Error()})
	}
	defer os.RemoveAll(dir)
	if err := selfSigned(dir); err != nil {
		return report(serverReady{Error: err.Error()})
	}
	metrics, err := webhook.NewMetrics(ctrlmetrics.Registry)
	if err != nil {
		return report(serverReady{Error: err.Error()})
	}
	// The manager reads Namespaces from its informer cache, which hands
	// out deep copies; so does this.
	ns := benchNamespace()
	opts := webhook.NewOptions()
	opts.Host, opts.Port, opts.CertDir = "127.0.0.1", c.port, dir
	srv, err := webhook.NewServer(opts)
	if err != nil {
		return report(serverReady{Error: err.Error()})
	}
	mutators := 0
	if c.mode == modeMutate {
		if mutators, err = registerMutate(srv, c.mutationLibrary, ns, logger); err != nil {
			return report(serverReady{Error: err.Error()})
		}
	}
	h := webhook.NewAdmissionHandler(eng, webhook.HandlerOptions{
		Namespaces:        func(context.Context, string) (*corev1.Namespace, error) { return ns.DeepCopy(), nil },
		Namespace:         "portcullis-system",
		ServiceAccount:    "system:serviceaccount:portcullis-system:portcullis-controller-manager",
		Timeout:           3 * time.Second,
		MaxServingThreads: c.maxServingThreads,
		Metrics:           metrics,
		Log:               logger.WithName("webhook").WithName("admit"),
	})
	if eng != nil {
		srv.Register(webhook.AdmitPath, h)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	go servePprof(ctx, c.pprofAddr, logger)

	if err := waitServing(ctx, c.port); err != nil {
		return report(serverReady{Error: err.Error()})
	}
	if err := report(serverReady{Templates: templates, Constraints: constraints, Mutators: mutators, CA: filepath.Join(dir, "tls.crt"),
		LoadSeconds: time.Since(begin).Seconds()}); err != nil {
		return err
	}
	return <-done
}

func report(r serverReady) error {
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		return err
	}
	if r.Error != "" {
		return errors.New(r.Error)
	}
	return nil
}

// loadLibrary adds every template of the library, each with its first
// sample constraint (samples/*/constraint.yaml, sorted).
func loadLibrary(ctx context.Context, dir string, cacheSize int, regoFirst bool) (*engine.Engine, int, int, error) {
	opts := engine.Options{ResultCacheSize: cacheSize, DisableK8sNativeValidation: regoFirst}
	if cacheSize == 0 {
		opts.ResultCacheSize = -1
	}
	lib, err := gklibrary.ReadTemplates(dir)
	if err != nil {
		return nil, 0, 0, err
	}
	eng, constraints, err := libengine.New(ctx, opts, lib)
	if err != nil {
		return nil, 0, 0, err
	}
	return eng, len(lib), constraints, nil
}

// selfSigned writes a serving certificate for 127.0.0.1 that is its own CA.
func selfSigned(dir string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
}

func servePprof(ctx context.Context, addr string, log logr.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error(err, "Serving pprof")
	}
}

func waitServing(ctx context.Context, port int) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for range 300 {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return conn.Close()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("the webhook did not listen on %s", addr)
}
