package webhook

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

func TestReviewSlots(t *testing.T) {
	var none *reviewSlots
	release, err := none.acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	release()

	s := newReviewSlots(1)
	hold, err := s.acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// With reviews taking a second each, a request with half a second
	// left cannot get the slot in time: turned away at once.
	s.avg.Store(int64(time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	short, cancelShort := context.WithDeadline(ctx, time.Now().Add(500*time.Millisecond))
	defer cancelShort()
	_, err = s.acquire(short)
	var herr *httpError
	if !errors.As(err, &herr) || herr.code != http.StatusServiceUnavailable {
		t.Fatalf("acquire = %v, want 503 overloaded", err)
	}
	// With time to wait, it waits: until its context ends here.
	long, cancelLong := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := s.acquire(long)
		done <- err
	}()
	cancelLong()
	if err := <-done; !errors.Is(err, context.Canceled) || errors.As(err, &herr) {
		t.Fatalf("acquire = %v, want the context's end", err)
	}
	hold()
	if s.avg.Load() == int64(time.Second) {
		t.Error("the average review time was not updated")
	}
	release, err = s.acquire(short)
	if err != nil {
		t.Fatalf("acquire with the slot free: %v", err)
	}
	release()
}
