package testenv

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Poll is how long Eventually waits for a condition, and how often it
// checks it.
type Poll struct {
	Timeout time.Duration
	// Interval is 100ms when zero.
	Interval time.Duration
}

// Eventually checks cond every p.Interval, at once first, until it returns
// nil; it fails the test with cond's last error once p.Timeout has passed
// or the test's context is done.
func Eventually(t testing.TB, p Poll, what string, cond func(ctx context.Context) error) {
	t.Helper()
	if p.Interval == 0 {
		p.Interval = 100 * time.Millisecond
	}
	last := errors.New("not checked")
	err := wait.PollUntilContextTimeout(t.Context(), p.Interval, p.Timeout, true, func(ctx context.Context) (bool, error) {
		last = cond(ctx)
		return last == nil, nil
	})
	if err != nil {
		t.Fatalf("Timed out after %s waiting for %s: %v", p.Timeout, what, last)
	}
}

// Holds makes a condition that reports whether it holds, and if not why,
// a condition for Eventually.
func Holds(cond func(ctx context.Context) (bool, error)) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		ok, err := cond(ctx)
		switch {
		case ok:
			return nil
		case err != nil:
			return err
		}
		return errors.New("the condition does not hold")
	}
}

// Buffer is a bytes.Buffer that a subprocess or a logger may write while
// the test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
