package testenv

import (
	"bytes"
	"context"
	"errors"
	"strings"
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

func (p Poll) interval() time.Duration {
	if p.Interval == 0 {
		return 100 * time.Millisecond
	}
	return p.Interval
}

// Until checks cond every p.Interval, at once first, until it returns nil,
// and returns nil then; once p.Timeout has passed or ctx is done, it
// returns cond's last error.
func (p Poll) Until(ctx context.Context, cond func(ctx context.Context) error) error {
	last := errors.New("not checked")
	err := wait.PollUntilContextTimeout(ctx, p.interval(), p.Timeout, true, func(ctx context.Context) (bool, error) {
		last = cond(ctx)
		return last == nil, nil
	})
	if err != nil {
		return last
	}
	return nil
}

// Eventually waits until cond returns nil (Poll.Until with the test's
// context), failing the test with cond's last error if it does not.
func Eventually(t testing.TB, p Poll, what string, cond func(ctx context.Context) error) {
	t.Helper()
	if err := p.Until(t.Context(), cond); err != nil {
		t.Fatalf("Timed out after %s waiting for %s: %v", p.Timeout, what, err)
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

// Count is how many lines of the buffer hold every one of s.
func (b *Buffer) Count(s ...string) int {
	n := 0
	for line := range strings.SplitSeq(b.String(), "\n") {
		if containsAll(line, s) {
			n++
		}
	}
	return n
}

// Contains reports whether one line of the buffer holds every one of s.
func (b *Buffer) Contains(s ...string) bool { return b.Count(s...) > 0 }

func containsAll(line string, s []string) bool {
	for _, x := range s {
		if !strings.Contains(line, x) {
			return false
		}
	}
	return true
}
