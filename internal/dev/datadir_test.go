package dev

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestLoadState(t *testing.T) {
	write := func(t *testing.T, dir, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, stateFile), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("new", func(t *testing.T) {
		st, note, err := loadState(t.TempDir())
		if err != nil || note != "" || st.Format != dataDirFormat || st.Samples != "" {
			t.Fatalf("got %+v %q %v, want a new state with the samples undecided", st, note, err)
		}
	})
	t.Run("format 1", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "etcd", "member"), 0o700); err != nil {
			t.Fatal(err)
		}
		st, note, err := loadState(dir)
		if err != nil || st.Samples != samplesApplied || !strings.Contains(note, "made by an older portcullis dev (format 1") {
			t.Fatalf("got %+v %q %v, want an upgrade with the samples counted as applied", st, note, err)
		}
	})
	t.Run("round trip", func(t *testing.T) {
		dir := t.TempDir()
		want := state{Format: dataDirFormat, Etcd: "v3.6.16", Samples: samplesSkipped}
		if err := want.save(dir); err != nil {
			t.Fatal(err)
		}
		got, note, err := loadState(dir)
		if err != nil || note != "" || got != want {
			t.Fatalf("got %+v %q %v, want %+v", got, note, err, want)
		}
	})
	for _, c := range []struct{ name, content, want string }{
		{"newer", `{"format": 3}`, "has format 3, written by a newer portcullis dev"},
		{"no format", `{}`, "has no valid format (0)"},
		{"not json", "format: 2", "is not a portcullis dev state file"},
		{"wrong type", `{"format": "2"}`, "is not a portcullis dev state file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, c.content)
			_, _, err := loadState(dir)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "make dev-clean") {
				t.Fatalf("got %v, want an error saying %q and how to reset", err, c.want)
			}
		})
	}
}

func TestCheckEtcd(t *testing.T) {
	for _, c := range []struct {
		was, have string
		want      string // "" for no error
	}{
		{"v3.6.16", "v3.6.16", ""},
		{"v3.6.1", "v3.6.16", ""},
		{"v3.5.0", "v3.6.16", ""},
		{"", "v3.6.16", ""},
		{"v3.6.16", "", ""},
		{"garbage", "v3.6.16", ""},
		{"v3.7.0", "v3.6.16", "etcd does not downgrade"},
		{"v4.0.0", "v3.6.16", "etcd does not downgrade"},
		{"v3.4.0", "v3.6.16", "one minor version at a time"},
	} {
		err := checkEtcd("/d", c.was, c.have)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s then %s: %v", c.was, c.have, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s then %s: got %v, want %q", c.was, c.have, err, c.want)
		}
	}
}

func TestParseOwner(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	for _, c := range []struct {
		in   string
		want owner
		ok   bool
	}{
		{"123\n", owner{PID: 123}, true},
		{"123 456 boot " + now.Format(time.RFC3339) + "\n", owner{PID: 123, Start: 456, Boot: "boot", Started: now}, true},
		{"", owner{}, false},
		{"-1", owner{}, false},
		{"x 1 2 3", owner{}, false},
	} {
		got, ok := parseOwner([]byte(c.in))
		if ok != c.ok || !got.Started.Equal(c.want.Started) || got.PID != c.want.PID || got.Start != c.want.Start || got.Boot != c.want.Boot {
			t.Errorf("parseOwner(%q) = %+v, %t; want %+v, %t", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestLockDataDir(t *testing.T) {
	dir := t.TempDir()
	l, err := lockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if l.previous != nil {
		t.Errorf("a new data dir has a previous holder: %+v", *l.previous)
	}
	// flock locks are per open file: a second open, even in this process,
	// is refused, naming this process.
	_, err = lockDataDir(dir)
	var inUse *InUseError
	if !errors.As(err, &inUse) || inUse.Owner.PID != os.Getpid() || !strings.Contains(err.Error(), "kill "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("second lock: got %v, want *InUseError naming PID %d", err, os.Getpid())
	}
	l.release()
	b, err := os.ReadFile(filepath.Join(dir, lockFile))
	if err != nil || len(b) != 0 {
		t.Errorf("a released lock names a holder: %q %v", b, err)
	}

	// A holder that died without releasing: its record stays, the lock is
	// free, and the next holder learns of it.
	if err := os.WriteFile(filepath.Join(dir, lockFile), []byte("999999999 1 boot 2026-01-02T03:04:05Z\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err = lockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.release()
	if l.previous == nil || l.previous.PID != 999999999 || l.previous.alive() {
		t.Errorf("stale holder: got %+v, want PID 999999999, not alive", l.previous)
	}
}
