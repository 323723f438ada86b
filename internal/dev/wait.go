package dev

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// Progress timing of every start-up wait: quiet for progressAfter, then a
// line every progressEvery with what it waits for and why.
var (
	progressAfter = 5 * time.Second
	progressEvery = 10 * time.Second
)

// ErrInterrupted is the cause of a start-up stopped by a signal.
var ErrInterrupted = errors.New("interrupted")

// check is one look at what a wait waits for: done, or the reason it is not
// yet ("" when there is nothing to say). An error ends the wait.
type check func(ctx context.Context) (done bool, reason string, err error)

// waitFor polls c every interval until it is done, ctx ends (a signal, or
// the start-up --timeout), or bound passes. Past progressAfter it prints
// what it waits for and the last reason to out; the error of a wait that
// ran out names both.
func waitFor(ctx context.Context, out io.Writer, what string, bound, interval time.Duration, c check) error {
	begin := time.Now()
	deadline := begin.Add(bound)
	nextNote := begin.Add(progressAfter)
	reason := ""
	for {
		done, r, err := c(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if done {
			return nil
		}
		if r != "" {
			reason = r
		}
		now := time.Now()
		if now.After(deadline) {
			return fmt.Errorf("%s: not done after %s%s", what, bound, because(reason))
		}
		if now.After(nextNote) {
			fmt.Fprintf(out, "portcullis dev: still waiting for %s (%s so far, at most %s)%s\n",
				what, now.Sub(begin).Round(time.Second), bound, because(reason))
			nextNote = now.Add(progressEvery)
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w%s", what, context.Cause(ctx), because(reason))
		case <-t.C:
		}
	}
}

func because(reason string) string {
	if reason == "" {
		return ""
	}
	return ": " + reason
}

// lastLine returns the last non-empty line of a log file, shortened, as a
// reason to show while a process starts; "" when there is none.
func lastLine(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const tail = 4096
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(fi.Size()-tail, 0)
	buf := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return ""
	}
	for _, line := range slices.Backward(bytes.Split(bytes.TrimRight(buf, "\n"), []byte("\n"))) {
		if l := strings.TrimSpace(string(line)); l != "" {
			if len(l) > 300 {
				l = l[:300] + "..."
			}
			return l
		}
	}
	return ""
}

// lastLines returns up to n last non-empty lines of a log file, for the
// error of a process that exited.
func lastLines(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var out []string
	for _, l := range slices.Backward(strings.Split(strings.TrimRight(string(b), "\n"), "\n")) {
		if len(out) == n {
			break
		}
		if l = strings.TrimSpace(l); l != "" {
			out = append([]string{"    " + l}, out...)
		}
	}
	return strings.Join(out, "\n")
}
