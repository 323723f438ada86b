package webhook

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// Lifetimes of the self-managed CA. Both are renewed once two thirds of
// their lifetime has passed: the CA four months before it expires, the
// serving certificate ten days before.
const (
	localCAValidity   = 365 * 24 * time.Hour
	localCertValidity = 30 * 24 * time.Hour
	localCheckEvery   = time.Hour
)

// caKeyFile holds the newest CA's key; ca.crt holds the CA bundle, newest
// first.
const caKeyFile = "ca.key"

// localCA is a small CA for webhooks registered by URL (local control
// planes): cert-controller only issues DNS names, and the API server checks
// an IP address in a URL against the certificate's IP addresses. It writes
// ca.crt, ca.key, tls.crt and tls.key to dir, where controller-runtime's
// certwatcher picks the serving certificate up, and renews them well
// before they expire. When the CA is renewed the old one stays in the
// bundle until it expires, so the API server trusts both while the new
// bundle reaches it.
type localCA struct {
	dir   string
	hosts []string
	log   logr.Logger
	now   func() time.Time

	caValidity, certValidity, checkEvery time.Duration

	ready     chan struct{}
	readyOnce sync.Once
	changed   chan struct{}

	mu     sync.Mutex
	cas    []*x509.Certificate // newest first
	caKey  *ecdsa.PrivateKey
	bundle []byte
}

func newLocalCA(dir string, hosts []string, log logr.Logger) *localCA {
	return &localCA{
		dir: dir, hosts: hosts, log: log, now: time.Now,
		caValidity: localCAValidity, certValidity: localCertValidity, checkEvery: localCheckEvery,
		ready: make(chan struct{}), changed: make(chan struct{}, 1),
	}
}

// NeedLeaderElection is false: every replica serves.
func (c *localCA) NeedLeaderElection() bool { return false }

// Start issues what is missing, then checks every hour for what is due.
func (c *localCA) Start(ctx context.Context) error {
	if err := c.ensure(); err != nil {
		return err
	}
	c.readyOnce.Do(func() { close(c.ready) })
	t := time.NewTicker(c.checkEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := c.ensure(); err != nil {
				c.log.Error(err, "Renewing the webhook certificate")
			}
		}
	}
}

// Bundle is the CA bundle to register: every unexpired CA, newest first.
func (c *localCA) Bundle() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.bundle...)
}

// due reports whether a certificate has used two thirds of its lifetime.
func due(cert *x509.Certificate, now time.Time) bool {
	life := cert.NotAfter.Sub(cert.NotBefore)
	return !now.Before(cert.NotBefore.Add(life * 2 / 3))
}

// ensure loads the CA from dir on first use, renews it when due, and
// issues a serving certificate when there is none, it is due, or it was
// signed by an older CA.
func (c *localCA) ensure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.caKey == nil {
		c.load(now)
	}
	bundleChanged := false
	if c.caKey == nil || due(c.cas[0], now) {
		if err := c.newCA(now); err != nil {
			return err
		}
		bundleChanged = true
	}
	// Drop expired CAs from the bundle.
	kept := c.cas[:1]
	for _, ca := range c.cas[1:] {
		if now.Before(ca.NotAfter) {
			kept = append(kept, ca)
		}
	}
	if len(kept) != len(c.cas) {
		bundleChanged = true
	}
	c.cas = kept
	if bundleChanged || c.bundle == nil {
		c.bundle = encodeCerts(c.cas)
		if err := writeFileAtomic(filepath.Join(c.dir, caKeyFile), encodeKey(c.caKey)); err != nil {
			return err
		}
		if err := writeFileAtomic(filepath.Join(c.dir, caCertFile), c.bundle); err != nil {
			return err
		}
		select {
		case c.changed <- struct{}{}:
		default:
		}
	}
	if cert := c.servingCert(); cert == nil || due(cert, now) || !bytes.Equal(cert.RawIssuer, c.cas[0].RawSubject) ||
		cert.CheckSignatureFrom(c.cas[0]) != nil {
		return c.issue(now)
	}
	return nil
}

// load reads a CA left in dir by an earlier run, if it is usable.
func (c *localCA) load(now time.Time) {
	certs, err := readCerts(filepath.Join(c.dir, caCertFile))
	if err != nil || len(certs) == 0 {
		return
	}
	data, err := os.ReadFile(filepath.Join(c.dir, caKeyFile))
	if err != nil {
		return
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return
	}
	key, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil || !key.PublicKey.Equal(certs[0].PublicKey) || !certs[0].IsCA || !now.Before(certs[0].NotAfter) {
		return
	}
	c.cas, c.caKey = certs, key
	c.log.Info("Loaded the webhook CA", "dir", c.dir, "notAfter", certs[0].NotAfter)
}

func (c *localCA) newCA(now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generating the CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "portcullis-webhook-ca", Organization: []string{"portcullis"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(c.caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("creating the CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("parsing the CA certificate: %w", err)
	}
	c.cas = append([]*x509.Certificate{ca}, c.cas...)
	c.caKey = key
	c.log.Info("Created the webhook CA", "notAfter", ca.NotAfter)
	return nil
}

// issue writes a serving certificate for the hosts, signed by the newest CA.
func (c *localCA) issue(now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generating the serving key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: c.hosts[0]},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     minTime(now.Add(c.certValidity), c.cas[0].NotAfter),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range c.hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cas[0], key.Public(), c.caKey)
	if err != nil {
		return fmt.Errorf("creating the serving certificate: %w", err)
	}
	// The key first: certwatcher reloads on either file and keeps the old
	// pair until the new one matches.
	if err := writeFileAtomic(filepath.Join(c.dir, keyFile), encodeKey(key)); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(c.dir, certFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})); err != nil {
		return err
	}
	c.log.Info("Issued the webhook serving certificate", "hosts", c.hosts, "notAfter", tmpl.NotAfter)
	return nil
}

// servingCert is the serving certificate in dir, nil if none is readable.
func (c *localCA) servingCert() *x509.Certificate {
	certs, err := readCerts(filepath.Join(c.dir, certFile))
	if err != nil || len(certs) == 0 {
		return nil
	}
	return certs[0]
}

func readCerts(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, cert)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: %w", path, errNoCertificate)
	}
	return out, nil
}

var errNoCertificate = errors.New("no certificate")

func encodeCerts(certs []*x509.Certificate) []byte {
	var buf bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return buf.Bytes()
}

func encodeKey(key *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		// Only for keys of unknown curves, which are never generated here.
		panic(fmt.Sprintf("encoding a P-256 key: %v", err))
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// writeFileAtomic replaces a file by renaming a new one over it, so that a
// reader never sees half of it.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
