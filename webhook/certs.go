package webhook

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/go-logr/logr"
	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Certificate file names in CertDir, as a kubernetes.io/tls Secret mounts
// them.
const (
	certFile   = "tls.crt"
	keyFile    = "tls.key"
	caCertFile = "ca.crt"
)

// certSource says when the serving certificate is in CertDir and which CA
// bundle the webhook configuration should carry.
type certSource struct {
	// ready is closed once CertDir holds the serving certificate.
	ready <-chan struct{}
	// bundle returns the CA bundle to register, or nil to leave the
	// caBundle fields to whoever writes them (cert-controller in-cluster,
	// cert-manager's cainjector).
	bundle func() []byte
	// changed receives when the bundle changes; nil if it never does.
	changed <-chan struct{}
}

// setupCerts picks how the serving certificate is managed:
//   - --disable-cert-rotation: the files in --cert-dir as they are,
//     reloaded by controller-runtime's certwatcher when they change;
//   - --webhook-url-host: a self-managed CA whose serving certificate
//     names that host (an IP address included, which cert-controller cannot
//     issue), written to --cert-dir;
//   - otherwise (in-cluster): cert-controller's rotator, which keeps a CA
//     and a serving certificate in the Secret --cert-secret-name (mounted
//     at --cert-dir), renews them 90 days before they expire and injects
//     the CA into the webhook configuration.
func setupCerts(mgr ctrl.Manager, o *Options, log logr.Logger) (*certSource, error) {
	switch {
	case o.DisableCertRotation:
		ready := make(chan struct{})
		close(ready)
		dir := o.CertDir
		return &certSource{ready: ready, bundle: func() []byte { return readCABundle(dir, log) }}, nil

	case o.URLHost != "":
		if o.CertDir == "" {
			dir, err := os.MkdirTemp("", "portcullis-webhook-certs-")
			if err != nil {
				return nil, fmt.Errorf("creating a certificate directory: %w", err)
			}
			o.CertDir = dir
		}
		hosts := []string{o.URLHost}
		if o.Host != "" && o.Host != o.URLHost {
			hosts = append(hosts, o.Host)
		}
		ca := newLocalCA(o.CertDir, hosts, log.WithName("certs"))
		if err := mgr.Add(ca); err != nil {
			return nil, fmt.Errorf("adding the webhook CA: %w", err)
		}
		return &certSource{ready: ca.ready, bundle: ca.Bundle, changed: ca.changed}, nil

	default:
		secret := types.NamespacedName{Namespace: o.Namespace, Name: o.CertSecretName}
		// cert-controller fills the Secret but needs it to exist.
		if err := mgr.Add(&secretCreator{client: mgr.GetClient(), key: secret, log: log.WithName("certs")}); err != nil {
			return nil, fmt.Errorf("adding the certificate Secret: %w", err)
		}
		ready := make(chan struct{})
		svc := o.ServiceName + "." + o.Namespace + ".svc"
		var webhooks []rotator.WebhookInfo
		if o.Enabled {
			webhooks = append(webhooks, rotator.WebhookInfo{Name: o.ConfigurationName, Type: rotator.Validating})
		}
		if o.mutating() {
			webhooks = append(webhooks, rotator.WebhookInfo{Name: o.MutatingConfigurationName, Type: rotator.Mutating})
		}
		err := rotator.AddRotator(mgr, &rotator.CertRotator{
			SecretKey:      secret,
			CertDir:        o.CertDir,
			CAName:         "portcullis-ca",
			CAOrganization: "portcullis",
			DNSName:        svc,
			ExtraDNSNames:  []string{svc + ".cluster.local"},
			IsReady:        ready,
			Webhooks:       webhooks,
			FieldOwner:     fieldManager,
			// Every replica serves, so every replica needs the certificate.
			RequireLeaderElection: false,
			ControllerName:        "portcullis-webhook-cert-rotator",
		})
		if err != nil {
			return nil, fmt.Errorf("adding the certificate rotator: %w", err)
		}
		return &certSource{ready: ready, bundle: func() []byte { return nil }}, nil
	}
}

// readCABundle reads CertDir/ca.crt, nil when there is none.
func readCABundle(dir string, log logr.Logger) []byte {
	data, err := os.ReadFile(filepath.Join(dir, caCertFile))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			log.Error(err, "Reading the CA bundle", "dir", dir)
		}
		return nil
	}
	return data
}

// secretCreator creates the empty certificate Secret when it is missing, as
// when the manager runs without the manifests of config/webhook; the
// rotator, which only updates it, retries until it is there.
type secretCreator struct {
	client client.Client
	key    types.NamespacedName
	log    logr.Logger
}

func (s *secretCreator) NeedLeaderElection() bool { return false }

func (s *secretCreator) Start(ctx context.Context) error {
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: s.key.Name, Namespace: s.key.Namespace,
		Labels: map[string]string{"app.kubernetes.io/name": "portcullis"}}, Type: corev1.SecretTypeOpaque}
	err := s.client.Create(ctx, secret, client.FieldOwner(fieldManager))
	switch {
	case err == nil:
		s.log.Info("Created the certificate Secret", "secret", s.key)
	case apierrors.IsAlreadyExists(err):
	default:
		// Not fatal: the rotator reports a missing Secret itself.
		s.log.Error(err, "Creating the certificate Secret", "secret", s.key)
	}
	return nil
}
