package dev

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The files of a data dir besides etcd/ and apiserver/.
const (
	lockFile  = "lock"
	stateFile = "portcullis-dev.json"
)

// dataDirFormat is the layout this version writes. Format 1, before
// stateFile existed, had etcd/ and apiserver/, a lock holding only a PID,
// and re-applied the samples on every start; it is upgraded in place.
const dataDirFormat = 2

// Samples states, in stateFile.
const (
	samplesApplied = "applied"
	samplesSkipped = "skipped" // the data dir was made with --no-samples
)

// state is stateFile: what a data dir holds and what made it.
type state struct {
	Format int `json:"format"`
	// Etcd is the version of the etcd that last ran on etcd/ ("" when
	// unknown): etcd cannot read data a newer minor version wrote.
	Etcd string `json:"etcd,omitempty"`
	// Samples is samplesApplied or samplesSkipped once decided, "" before.
	Samples string `json:"samples,omitempty"`
}

// ResetHint says how to start afresh; every message about a data dir this
// version cannot use ends with it.
func resetHint(dataDir string) string {
	return fmt.Sprintf("start afresh with `make dev-clean` (or `rm -rf %s`), or pass another --data-dir", dataDir)
}

// loadState reads stateFile. A data dir without it is new when etcd/ holds
// no member yet, or format 1 (upgraded: note says so) when it does. A
// format this version does not know is an error that says what to do.
func loadState(dataDir string) (st state, note string, err error) {
	path := filepath.Join(dataDir, stateFile)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if _, serr := os.Stat(filepath.Join(dataDir, etcdDir, "member")); serr != nil {
			return state{Format: dataDirFormat}, "", nil
		}
		// Format 1 applied the samples on every start: they are there.
		note = fmt.Sprintf("data dir %s was made by an older portcullis dev (format 1, no %s); upgrading it in place: "+
			"its objects are kept, and the samples are no longer applied on every start (--samples applies them again)", dataDir, stateFile)
		return state{Format: dataDirFormat, Samples: samplesApplied}, note, nil
	case err != nil:
		return state{}, "", fmt.Errorf("reading %s: %w", path, err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return state{}, "", fmt.Errorf("%s is not a portcullis dev state file (%w); %s", path, err, resetHint(dataDir))
	}
	switch {
	case st.Format > dataDirFormat:
		return state{}, "", fmt.Errorf("data dir %s has format %d, written by a newer portcullis dev; this one reads formats 1 to %d: "+
			"run the newer portcullis, or %s", dataDir, st.Format, dataDirFormat, resetHint(dataDir))
	case st.Format < 1:
		return state{}, "", fmt.Errorf("%s has no valid format (%d); %s", path, st.Format, resetHint(dataDir))
	}
	st.Format = dataDirFormat
	return st, "", nil
}

// save writes stateFile at once.
func (st state) save(dataDir string) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dataDir, stateFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// checkEtcd refuses to run etcd version have on data that etcd version was
// wrote: etcd does not downgrade, and upgrades one minor version at a time.
// Unknown versions pass.
func checkEtcd(dataDir, was, have string) error {
	wm, wn, ok1 := majorMinor(was)
	hm, hn, ok2 := majorMinor(have)
	if !ok1 || !ok2 {
		return nil
	}
	switch {
	case wm != hm || hn < wn:
		return fmt.Errorf("the etcd data in %s was written by etcd %s, which this etcd %s cannot read (etcd does not downgrade); "+
			"rebuild the control plane with `make envtest-assets`, or %s", dataDir, was, have, resetHint(dataDir))
	case hn > wn+1:
		return fmt.Errorf("the etcd data in %s was written by etcd %s; etcd %s cannot read it (etcd upgrades one minor version at a time); %s",
			dataDir, was, have, resetHint(dataDir))
	}
	return nil
}

// majorMinor parses "v3.6.16" or "3.6".
func majorMinor(v string) (int, int, bool) {
	f := strings.SplitN(strings.TrimPrefix(strings.TrimSpace(v), "v"), ".", 3)
	if len(f) < 2 {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(f[0])
	minor, err2 := strconv.Atoi(f[1])
	return major, minor, err1 == nil && err2 == nil
}

// owner is the portcullis dev that holds, or held, a data dir's lock.
type owner struct {
	PID     int
	Start   uint64 // clock ticks after boot, 0 when unknown (format 1)
	Boot    string
	Started time.Time // zero when unknown
}

func (o owner) String() string {
	if o.Started.IsZero() {
		return fmt.Sprintf("PID %d", o.PID)
	}
	return fmt.Sprintf("PID %d, started %s", o.PID, o.Started.Local().Format(time.DateTime))
}

// parseOwner reads a lock file: "<pid> <start> <boot> <RFC 3339 time>",
// or format 1's "<pid>".
func parseOwner(b []byte) (owner, bool) {
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return owner{}, false
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 0 {
		return owner{}, false
	}
	o := owner{PID: pid}
	if len(f) >= 4 {
		o.Start, _ = strconv.ParseUint(f[1], 10, 64)
		o.Boot = f[2]
		o.Started, _ = time.Parse(time.RFC3339, f[3])
	}
	return o, true
}

// alive reports whether the owner still runs (same PID, start and boot).
// Without a start time (format 1) a live PID counts.
func (o owner) alive() bool {
	if o.Start == 0 {
		st, ok := readStat(o.PID)
		return ok && st.State != 'Z'
	}
	return proc{PID: o.PID, Start: o.Start, Boot: o.Boot}.alive()
}

// InUseError is returned when another portcullis dev holds the data dir.
type InUseError struct {
	DataDir string
	Owner   owner
}

func (e *InUseError) Error() string {
	if e.Owner.PID == 0 {
		return fmt.Sprintf("another portcullis dev is already running with data dir %s (%s does not name it); stop it first",
			e.DataDir, filepath.Join(e.DataDir, lockFile))
	}
	return fmt.Sprintf("another portcullis dev (%s) is already running with data dir %s; stop it first (Ctrl-C in its terminal, or kill %d)",
		e.Owner, e.DataDir, e.Owner.PID)
}

// dirLock is a data dir's lock, held with flock(2) for as long as this
// process runs: the kernel releases it when the process dies, however it
// dies. The file names the holder.
type dirLock struct {
	f *os.File
	// previous is the holder the file named when the lock was taken, if
	// any: a run that ended without unlocking (killed).
	previous *owner
}

// lockDataDir takes the lock of dataDir, or returns *InUseError naming the
// live holder. Where flock is not supported, the holder's PID and start
// time decide: a lock whose holder is gone is stale and taken over.
func lockDataDir(dataDir string) (*dirLock, error) {
	path := filepath.Join(dataDir, lockFile)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the lock of the data dir: %w", err)
	}
	b, _ := os.ReadFile(path)
	prev, hadPrev := parseOwner(b)
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		switch {
		case errors.Is(err, syscall.EWOULDBLOCK):
			f.Close()
			return nil, &InUseError{DataDir: dataDir, Owner: holder(path)}
		case errors.Is(err, syscall.ENOLCK), errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.ENOSYS):
			// No flock on this file system: judge by the recorded holder.
			if hadPrev && prev.PID != os.Getpid() && prev.alive() {
				f.Close()
				return nil, &InUseError{DataDir: dataDir, Owner: prev}
			}
		default:
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
	}
	l := &dirLock{f: f}
	if hadPrev {
		l.previous = &prev
	}
	self, _ := identify("portcullis", os.Getpid())
	if err := f.Truncate(0); err != nil {
		l.release()
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := fmt.Fprintf(f, "%d %d %s %s\n", os.Getpid(), self.Start, bootOrDash(self.Boot), time.Now().Format(time.RFC3339)); err != nil {
		l.release()
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	return l, nil
}

// holder reads who holds a lock: the holder writes its record right after
// taking the lock, so a lock taken a moment ago may not name it yet.
func holder(path string) owner {
	deadline := time.Now().Add(2 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if o, ok := parseOwner(b); ok || time.Now().After(deadline) {
			return o
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func bootOrDash(b string) string {
	if b == "" {
		return "-"
	}
	return b
}

// release empties the lock file (a clean stop leaves no holder behind) and
// unlocks it.
func (l *dirLock) release() {
	_ = l.f.Truncate(0)
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	_ = l.f.Close()
}
