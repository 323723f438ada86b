package manager

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/log"
)

// pprofServer serves net/http/pprof on localhost, as Gatekeeper's
// --enable-pprof does, on every replica.
type pprofServer struct{ addr string }

func newPprofServer(port int) *pprofServer {
	return &pprofServer{addr: net.JoinHostPort("localhost", strconv.Itoa(port))}
}

func (*pprofServer) NeedLeaderElection() bool { return false }

func (p *pprofServer) Start(ctx context.Context) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Addr: p.addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return fmt.Errorf("listening for pprof on %s: %w", p.addr, err)
	}
	log.FromContext(ctx).Info("Serving pprof", "address", p.addr)
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving pprof: %w", err)
	}
	return nil
}
