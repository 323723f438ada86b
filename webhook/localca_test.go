package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/portcullis-dev/portcullis/internal/testenv"
)

func pool(t *testing.T, bundle []byte) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(bundle) {
		t.Fatalf("bundle %q holds no certificate", bundle)
	}
	return p
}

func serving(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	certs, err := readCerts(filepath.Join(dir, certFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.LoadX509KeyPair(filepath.Join(dir, certFile), filepath.Join(dir, keyFile)); err != nil {
		t.Fatalf("serving key pair: %v", err)
	}
	return certs[0]
}

func verify(t *testing.T, cert *x509.Certificate, bundle []byte, host string, at time.Time) error {
	t.Helper()
	_, err := cert.Verify(x509.VerifyOptions{Roots: pool(t, bundle), DNSName: host, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err
}

func TestLocalCA(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	ca := newLocalCA(dir, []string{"127.0.0.1", "localhost"}, logr.Discard())
	ca.now = func() time.Time { return now }

	if err := ca.ensure(); err != nil {
		t.Fatal(err)
	}
	first := serving(t, dir)
	bundle := ca.Bundle()
	for _, host := range []string{"127.0.0.1", "localhost"} {
		if err := verify(t, first, bundle, host, now); err != nil {
			t.Errorf("serving certificate for %s: %v", host, err)
		}
	}
	if err := verify(t, first, bundle, "example.com", now); err == nil {
		t.Error("serving certificate valid for example.com")
	}
	select {
	case <-ca.changed:
	default:
		t.Error("no change signaled for the first bundle")
	}

	t.Run("nothing due: nothing changes", func(t *testing.T) {
		now = now.Add(24 * time.Hour)
		if err := ca.ensure(); err != nil {
			t.Fatal(err)
		}
		if serving(t, dir).SerialNumber.Cmp(first.SerialNumber) != 0 || !bytes.Equal(ca.Bundle(), bundle) {
			t.Error("renewed before due")
		}
	})

	t.Run("serving certificate renewed at two thirds of its life", func(t *testing.T) {
		now = first.NotBefore.Add(first.NotAfter.Sub(first.NotBefore) * 2 / 3)
		if err := ca.ensure(); err != nil {
			t.Fatal(err)
		}
		second := serving(t, dir)
		if second.SerialNumber.Cmp(first.SerialNumber) == 0 {
			t.Fatal("not renewed")
		}
		if !bytes.Equal(ca.Bundle(), bundle) {
			t.Error("CA changed with the serving certificate")
		}
		if err := verify(t, second, bundle, "127.0.0.1", now); err != nil {
			t.Error(err)
		}
	})

	t.Run("CA renewed well before expiry; the old one stays trusted", func(t *testing.T) {
		oldCA := ca.cas[0]
		before := serving(t, dir)
		now = oldCA.NotBefore.Add(oldCA.NotAfter.Sub(oldCA.NotBefore) * 2 / 3)
		if now.After(oldCA.NotAfter.Add(-90 * 24 * time.Hour)) {
			t.Fatalf("renewal at %s is less than 90 days before the CA expires at %s", now, oldCA.NotAfter)
		}
		if err := ca.ensure(); err != nil {
			t.Fatal(err)
		}
		newBundle := ca.Bundle()
		certs, err := readCerts(filepath.Join(dir, caCertFile))
		if err != nil || len(certs) != 2 || !certs[1].Equal(oldCA) {
			t.Fatalf("bundle on disk: %d certificates, %v; want the new CA and the old", len(certs), err)
		}
		if err := verify(t, before, newBundle, "127.0.0.1", before.NotBefore.Add(2*time.Hour)); err != nil {
			t.Errorf("a certificate of the old CA is no longer trusted: %v", err)
		}
		after := serving(t, dir)
		if err := after.CheckSignatureFrom(ca.cas[0]); err != nil {
			t.Errorf("new serving certificate not signed by the new CA: %v", err)
		}
		now = oldCA.NotAfter.Add(time.Hour)
		if err := ca.ensure(); err != nil {
			t.Fatal(err)
		}
		if certs, _ := readCerts(filepath.Join(dir, caCertFile)); len(certs) != 1 {
			t.Errorf("expired CA still in the bundle: %d certificates", len(certs))
		}
	})

	t.Run("a restart reuses the CA in the directory", func(t *testing.T) {
		again := newLocalCA(dir, []string{"127.0.0.1"}, logr.Discard())
		again.now = func() time.Time { return now }
		if err := again.ensure(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again.Bundle(), ca.Bundle()) {
			t.Error("CA not reused")
		}
	})
}

// TestRotationReachesTheServer: a renewed certificate is served without a
// restart (controller-runtime's certwatcher reloads it).
func TestRotationReachesTheServer(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca := newLocalCA(dir, []string{"127.0.0.1"}, logr.Discard())
	ca.now = func() time.Time { return now }
	if err := ca.ensure(); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	o := NewOptions()
	o.Host, o.Port, o.CertDir = "127.0.0.1", port, dir
	srv, err := NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	srv.Register("/ok", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("local CA: %v", err)
		}
	})

	servedSerial := func(ctx context.Context) (string, error) {
		conn, err := (&tls.Dialer{Config: &tls.Config{RootCAs: pool(t, ca.Bundle()), ServerName: "127.0.0.1"}}).DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return "", err
		}
		defer conn.Close()
		st := conn.(*tls.Conn).ConnectionState()
		if st.Version != tls.VersionTLS13 || st.NegotiatedProtocol == "h2" {
			return "", fmt.Errorf("TLS %x, protocol %q: want TLS 1.3 and no HTTP/2", st.Version, st.NegotiatedProtocol)
		}
		return st.PeerCertificates[0].SerialNumber.String(), nil
	}
	first := serving(t, dir).SerialNumber.String()
	testenv.Eventually(t, testenv.Poll{Timeout: 2 * time.Minute}, "the server to serve its certificate", func(ctx context.Context) error {
		got, err := servedSerial(ctx)
		if err == nil && got != first {
			err = fmt.Errorf("serial %s, want %s", got, first)
		}
		return err
	})
	// Renew: without a serving certificate, ensure issues one.
	if err := os.Remove(filepath.Join(dir, certFile)); err != nil {
		t.Fatal(err)
	}
	if err := ca.ensure(); err != nil {
		t.Fatal(err)
	}
	second := serving(t, dir).SerialNumber.String()
	if second == first {
		t.Fatal("not renewed")
	}
	testenv.Eventually(t, testenv.Poll{Timeout: 2 * time.Minute}, "the renewed certificate to be served", func(ctx context.Context) error {
		got, err := servedSerial(ctx)
		if err == nil && got != second {
			err = fmt.Errorf("serial %s, want %s", got, second)
		}
		return err
	})
}
