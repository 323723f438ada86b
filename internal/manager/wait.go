package manager

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// WaitReady waits until the engine holds every policy and, when readyzURL is
// set, the manager's /readyz answers 200 (so the webhook and data sync are
// ready too). done receives Start's result: if the manager stops first,
// WaitReady puts that result back into done (it must have room for one) and
// returns it. ctx bounds the wait.
func (m *Manager) WaitReady(ctx context.Context, readyzURL string, done chan error) error {
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		select {
		case err := <-done:
			done <- err
			return false, Stopped(err)
		default:
		}
		if m.Ready() != nil {
			return false, nil
		}
		if readyzURL == "" {
			return true, nil
		}
		resp, err := http.Get(readyzURL)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the manager to be ready: %w", err)
	}
	return nil
}

// Stopped is the error of a manager that stopped before it was asked to:
// err is what Start returned, nil when it returned without one.
func Stopped(err error) error {
	if err == nil {
		return errors.New("the manager stopped")
	}
	return fmt.Errorf("the manager stopped: %w", err)
}
